"""Conversation and message queries for the chat pages.

Every read and write takes the owner hash of the browser session and checks it in the same query:
an unknown conversation and another session's conversation are the same :class:`NotFound`, so a
404 never tells one from the other. A deleted conversation (waiting for an undo, see
:mod:`web.db.trash`) is NotFound here too. Turn rows are written by :mod:`web.db.turnlog` (the functions
that store a user's message open its turn through it, in the same transaction); here they are
only read, to show each user message with its reply and to build the history a turn sends. Which
turn is a message's reply (the latest, unless it is an upgrade that did not answer) is
:mod:`web.db.exchanges`. The sidebar's list is :mod:`web.db.sidebar`.

A conversation takes one reply at a time, whichever process is asked: the transaction that opens
a turn first locks the conversation's row, then refuses (Conflict) while a reply is queued in it
or a live process (web.processes) is writing one. The runner's claim (web.runner) is only the
in-process fast path in front of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from web.db.deferred import queued_in
from web.db.exchanges import Exchange, exchange_of, pair, takes_place, with_failures
from web.db.models import Conversation, Message, Process, Turn, utcnow
from web.db.session import Factory, read_scope, session_scope
from web.db.turnlog import open_turn
from web.errors import CONVERSATION_NOT_FOUND, Conflict, NotFound
from web.providers.base import ChatMessage
from web.status import LIVE_STATUSES, TurnStatus
from web.wording import REGENERATE_BUSY, REPLY_BUSY, UPGRADE_BUSY

TITLE_CHARS = 60
TURN_NOT_FOUND = "This reply does not exist in this conversation."
QUEUED_BUSY = (
    "A reply is queued in this conversation. A new message can be sent once it lands or is "
    "cancelled (other conversations work as usual). Your message is still in the box."
)

#: Replies whose text is part of the conversation the next turn sends to the model.
_HISTORY_STATUSES = frozenset(
    {TurnStatus.OK, TurnStatus.DEGRADED, TurnStatus.STOPPED, TurnStatus.INTERRUPTED}
)


@dataclass(frozen=True)
class ConversationRow:
    id: str
    title: str


@dataclass(frozen=True)
class NewTurn:
    """A stored user message and the pending turn that answers it."""

    conversation_id: str
    user_message_id: int
    turn_id: str
    history: tuple[ChatMessage, ...]
    """What the model is sent: the conversation up to and including the user's message."""
    created_at: datetime | None = None
    """When the user's message was stored (None for a regenerated reply: no new message)."""
    upgrade_of: str | None = None
    """For "Ask Sonnet again": the degraded turn the new one re-runs."""
    drill_id: str | None = None
    """The drill whose own turn it is (web.drills)."""


@dataclass(frozen=True)
class TurnRow:
    turn: Turn
    reply: Message | None


def title_from(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1].rstrip() + "…"


async def _owned(
    session: AsyncSession, owner: str, conversation_id: str, *, lock: bool = False
) -> Conversation:
    """``lock``: hold the conversation's row until the transaction ends (FOR UPDATE on
    PostgreSQL; SQLite has one writer at a time), so two processes opening a turn in it at once
    run their busy checks one after the other."""
    query = select(Conversation).where(
        Conversation.id == conversation_id,
        Conversation.owner == owner,
        Conversation.deleted_at.is_(None),
    )
    conversation = await session.scalar(query.with_for_update() if lock else query)
    if conversation is None:
        raise NotFound(CONVERSATION_NOT_FOUND)
    return conversation


async def move_conversations(factory: Factory, old_owner: str, new_owner: str) -> int:
    """Give a session's conversations to the session that replaced it (after a rotation)."""
    async with session_scope(factory) as session:
        moved = await session.execute(
            update(Conversation)
            .where(Conversation.owner == old_owner)
            .values(owner=new_owner)
            .execution_options(synchronize_session=False)
        )
        return int(moved.rowcount)  # type: ignore[attr-defined]


async def get_conversation(factory: Factory, owner: str, conversation_id: str) -> ConversationRow:
    # Every reply stream checks ownership with this: columns, not an ORM object, and no transaction
    # beyond the one statement.
    async with read_scope(factory) as session:
        row = (
            await session.execute(
                select(Conversation.id, Conversation.title).where(
                    Conversation.id == conversation_id,
                    Conversation.owner == owner,
                    Conversation.deleted_at.is_(None),
                )
            )
        ).first()
    if row is None:
        raise NotFound(CONVERSATION_NOT_FOUND)
    return ConversationRow(id=row.id, title=row.title)


async def start_conversation(
    factory: Factory,
    owner: str,
    content: str,
    *,
    drill_id: str | None = None,
    process_id: str | None = None,
) -> NewTurn:
    """A new conversation, its first user message and the turn answering it: one transaction.
    ``process_id`` (here and below): the process that runs the turn (web.processes)."""
    async with session_scope(factory) as session:
        conversation_id, message_id = await _start_conversation(session, owner, content)
        turn_id, _ = await open_turn(
            session,
            conversation_id=conversation_id,
            user_message_id=message_id,
            drill_id=drill_id,
            process_id=process_id,
        )
    history = (ChatMessage(role="user", content=content),)
    return NewTurn(conversation_id, message_id, turn_id, history, drill_id=drill_id)


async def _start_conversation(session: AsyncSession, owner: str, content: str) -> tuple[str, int]:
    conversation = Conversation(owner=owner, title=title_from(content))
    session.add(conversation)
    await session.flush()
    message = Message(conversation_id=conversation.id, role="user", content=content)
    session.add(message)
    await session.flush()
    return conversation.id, message.id


async def add_user_message(
    factory: Factory,
    owner: str,
    conversation_id: str,
    content: str,
    *,
    drill_id: str | None = None,
    process_id: str | None = None,
) -> NewTurn:
    """A user message and the turn answering it, in one transaction (one commit before the model
    is called, not two): ownership, the insert, the history the turn sends, the turn row."""
    async with session_scope(factory) as session:
        message_id, history, at = await _add_user_message(session, owner, conversation_id, content)
        turn_id, _ = await open_turn(
            session,
            conversation_id=conversation_id,
            user_message_id=message_id,
            drill_id=drill_id,
            process_id=process_id,
        )
    return NewTurn(conversation_id, message_id, turn_id, history, created_at=at, drill_id=drill_id)


async def regenerate(
    factory: Factory,
    owner: str,
    conversation_id: str,
    user_message_id: int,
    *,
    drill_id: str | None = None,
    process_id: str | None = None,
) -> NewTurn:
    """A new turn answering a stored user message (Regenerate, Retry), in one transaction."""
    async with session_scope(factory) as session:
        await _owned(session, owner, conversation_id, lock=True)
        await _not_busy(session, conversation_id, busy=REGENERATE_BUSY)
        history = await _history(session, conversation_id, user_message_id)
        turn_id, _ = await open_turn(
            session,
            conversation_id=conversation_id,
            user_message_id=user_message_id,
            drill_id=drill_id,
            process_id=process_id,
        )
    return NewTurn(conversation_id, user_message_id, turn_id, history, drill_id=drill_id)


async def upgrade(
    factory: Factory,
    owner: str,
    conversation_id: str,
    turn_id: str,
    *,
    process_id: str | None = None,
) -> NewTurn:
    """A new turn re-running ``turn_id`` for the same user message ("Ask Sonnet again"), with
    the same history, in one transaction. Whether it may is the caller's (web.upgrades)."""
    async with session_scope(factory) as session:
        await _owned(session, owner, conversation_id, lock=True)
        await _not_live(session, conversation_id, busy=UPGRADE_BUSY)
        user_message_id = await _user_message_of(session, conversation_id, turn_id)
        history = await _history(session, conversation_id, user_message_id)
        new_id, _ = await open_turn(
            session,
            conversation_id=conversation_id,
            user_message_id=user_message_id,
            upgrade_of=turn_id,
            process_id=process_id,
        )
    return NewTurn(conversation_id, user_message_id, new_id, history, upgrade_of=turn_id)


async def _user_message_of(session: AsyncSession, conversation_id: str, turn_id: str) -> int:
    user_message_id = await session.scalar(
        select(Turn.user_message_id).where(
            Turn.id == turn_id, Turn.conversation_id == conversation_id
        )
    )
    if user_message_id is None:
        raise NotFound(TURN_NOT_FOUND)
    return user_message_id


async def _add_user_message(
    session: AsyncSession,
    owner: str,
    conversation_id: str,
    content: str,
) -> tuple[int, tuple[ChatMessage, ...], datetime]:
    # Ownership check and "latest activity" in one statement: this runs before every reply.
    now = utcnow()
    touched = await session.execute(
        update(Conversation)
        .where(
            Conversation.id == conversation_id,
            Conversation.owner == owner,
            Conversation.deleted_at.is_(None),
        )
        .values(updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if touched.rowcount != 1:  # type: ignore[attr-defined]
        raise NotFound(CONVERSATION_NOT_FOUND)
    await _not_busy(session, conversation_id, busy=REPLY_BUSY)
    message_id = await session.scalar(
        insert(Message)
        .values(conversation_id=conversation_id, role="user", content=content, created_at=now)
        .returning(Message.id)
    )
    assert message_id is not None
    history = await _history(session, conversation_id, message_id)
    return message_id, history, now


async def _not_busy(session: AsyncSession, conversation_id: str, *, busy: str) -> None:
    """A queued reply holds its conversation: a new turn would be answered before it. So does a
    reply a live process is writing, in this process or another (``busy`` says so). The caller
    holds the conversation's row, so two transactions never both pass."""
    if await queued_in(session, conversation_id) is not None:
        raise Conflict(QUEUED_BUSY)
    await _not_live(session, conversation_id, busy=busy)


async def _not_live(session: AsyncSession, conversation_id: str, *, busy: str) -> None:
    # A live turn whose process has died holds nothing: the sweep interrupts it (web.processes).
    writing = await session.scalar(
        select(Turn.id)
        .join(Process, Process.id == Turn.process_id)
        .where(
            Turn.conversation_id == conversation_id,
            Turn.status.in_(LIVE_STATUSES),
            Process.lease_until >= utcnow(),
        )
        .limit(1)
    )
    if writing is not None:
        raise Conflict(busy)


async def rename_conversation(
    factory: Factory, owner: str, conversation_id: str, title: str
) -> ConversationRow:
    async with session_scope(factory) as session:
        conversation = await _owned(session, owner, conversation_id)
        conversation.title = title
        return ConversationRow(id=conversation.id, title=conversation.title)


async def load_exchanges(factory: Factory, owner: str, conversation_id: str) -> list[Exchange]:
    """Each user message with the turn that is its reply and that turn's text, oldest first."""
    async with read_scope(factory) as session:
        await _owned(session, owner, conversation_id)
        messages = (
            await session.scalars(
                select(Message)
                .where(Message.conversation_id == conversation_id)
                .order_by(Message.id)
            )
        ).all()
        turns = (
            await session.scalars(
                select(Turn)
                .where(Turn.conversation_id == conversation_id)
                .order_by(Turn.started_at, Turn.id)
            )
        ).all()
        return await with_failures(session, pair(messages, turns))


async def load_exchange(
    factory: Factory, owner: str, conversation_id: str, *, turn_id: str | None = None
) -> Exchange | None:
    """The exchange ``turn_id`` belongs to (None: the conversation's latest), paired as
    :func:`load_exchanges` pairs it; None if the conversation has no message yet."""
    async with read_scope(factory) as session:
        await _owned(session, owner, conversation_id)
        latest = await session.scalar(
            select(func.max(Message.id)).where(
                Message.conversation_id == conversation_id, Message.role == "user"
            )
        )
        user_id = latest
        if turn_id is not None:
            user_id = await _user_message_of(session, conversation_id, turn_id)
        if user_id is None:
            return None
        user = await session.scalar(select(Message).where(Message.id == user_id))
        turns = (
            await session.scalars(
                select(Turn)
                .where(Turn.conversation_id == conversation_id, Turn.user_message_id == user_id)
                .order_by(Turn.started_at, Turn.id)
            )
        ).all()
        replies = (
            await session.scalars(
                select(Message).where(
                    Message.turn_id.in_([t.id for t in turns]), Message.role == "assistant"
                )
            )
        ).all()
        assert user is not None
        by_turn = {m.turn_id: m for m in replies if m.turn_id}
        [exchange] = await with_failures(
            session, [exchange_of(user, turns, by_turn, last=user_id == latest)]
        )
        return exchange


async def get_turn(factory: Factory, owner: str, conversation_id: str, turn_id: str) -> TurnRow:
    async with read_scope(factory) as session:
        await _owned(session, owner, conversation_id)
        return await _turn_row(session, conversation_id, turn_id)


async def get_checked_turn(factory: Factory, conversation_id: str, turn_id: str) -> TurnRow:
    """A turn whose ownership was checked earlier, by a stream when it opened: the session may
    have been rotated since (an admin login moves its conversations to the new owner)."""
    async with read_scope(factory) as session:
        return await _turn_row(session, conversation_id, turn_id)


async def _turn_row(session: AsyncSession, conversation_id: str, turn_id: str) -> TurnRow:
    turn = await session.scalar(
        select(Turn).where(Turn.id == turn_id, Turn.conversation_id == conversation_id)
    )
    if turn is None:
        raise NotFound(TURN_NOT_FOUND)
    reply = await session.scalar(
        select(Message).where(Message.turn_id == turn_id, Message.role == "assistant")
    )
    return TurnRow(turn=turn, reply=reply)


async def _history(
    session: AsyncSession, conversation_id: str, user_message_id: int
) -> tuple[ChatMessage, ...]:
    """What the model sees for a turn answering `user_message_id`: the conversation up to it.

    Earlier exchanges contribute the user's words and their reply (web.db.exchanges: the latest
    turn, unless an upgrade that did not answer) if it has text; failed replies are left out,
    and consecutive messages of one role are joined (both providers want the roles to alternate).
    """
    # One query (it runs before every reply): each message with, for replies, its turn. Every
    # reply is read, as one regenerated later has a larger id than the message it answers.
    rows = await session.execute(
        select(
            Message.id,
            Message.role,
            Message.content,
            Turn.user_message_id,
            Turn.status,
            Turn.upgrade_of,
        )
        .outerjoin(Turn, Turn.id == Message.turn_id)
        .where(Message.conversation_id == conversation_id)
        .order_by(Message.id)
    )
    users: list[tuple[int, str]] = []
    latest: dict[int, tuple[TurnStatus | None, str]] = {}
    """user message id -> (status, text) of its latest reply (replies come in creation order)."""
    for message_id, role, content, answers, status, upgrade_of in rows:
        if role == "user":
            if message_id <= user_message_id:
                users.append((message_id, content))
        elif answers is not None and answers < user_message_id and takes_place(status, upgrade_of):
            latest[answers] = (status, content)
    history: list[ChatMessage] = []
    for message_id, content in users:
        _append(history, ChatMessage(role="user", content=content))
        reply_status, text = latest.get(message_id, (None, ""))
        if reply_status in _HISTORY_STATUSES and text:
            _append(history, ChatMessage(role="assistant", content=text))
    return tuple(history)


def _append(history: list[ChatMessage], message: ChatMessage) -> None:
    if history and history[-1].role == message.role:
        history[-1] = ChatMessage(
            role=message.role, content=f"{history[-1].content}\n\n{message.content}"
        )
    else:
        history.append(message)


async def live_turn_in(factory: Factory, conversation_id: str) -> str | None:
    """The turn running in this conversation according to its row (in any process), if any."""
    async with read_scope(factory) as session:
        return await session.scalar(
            select(Turn.id)
            .where(Turn.conversation_id == conversation_id, Turn.status.in_(LIVE_STATUSES))
            .limit(1)
        )
