"""web.db.chat on SQLite and PostgreSQL: ownership, exchanges, the history a turn sends."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from web.db import chat, sidebar, trash
from web.db.migrate import upgrade_database
from web.db.models import Conversation, Message, Turn, utcnow
from web.db.session import make_engine, make_sessionmaker, read_scope
from web.db.turnlog import record_outcome
from web.errors import NotFound
from web.outcome import TurnOutcome
from web.providers.base import ChatMessage
from web.status import TurnStatus

from support.outcomes import SONNET, answer, no_answer, ok, stopped

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
ALICE, BOB = "a" * 64, "b" * 64


async def _pg(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN, timeout=3)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def sessions(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    name = None
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}"
    else:
        name = f"understudy_app_{uuid.uuid4().hex[:12]}"
        try:
            await _pg(f'CREATE DATABASE "{name}"')
        except (OSError, asyncpg.PostgresError) as exc:
            pytest.skip(f"PostgreSQL not reachable: {exc}")
        url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    await asyncio.to_thread(upgrade_database, url)
    engine = make_engine(url)
    try:
        yield make_sessionmaker(engine)
    finally:
        await engine.dispose()
        if name:
            await _pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _answer(
    sessions: async_sessionmaker[AsyncSession],
    conversation: str,
    message: int,
    text: str,
    status: TurnStatus = TurnStatus.OK,
) -> str:
    """A new turn answering `message` (as Regenerate opens one), ended with `status`."""
    new = await chat.regenerate(sessions, ALICE, conversation, message)
    await record_outcome(sessions, new.turn_id, _outcome(status, text))
    return new.turn_id


def _outcome(status: TurnStatus, text: str) -> TurnOutcome:
    match status:
        case TurnStatus.OK:
            return answer(SONNET, text, (ok(SONNET, 1),))
        case TurnStatus.FAILED:
            return no_answer("No model could answer.", ())
        case TurnStatus.STOPPED:
            return stopped(text, SONNET, ())
    raise AssertionError(status)


async def _history(
    sessions: async_sessionmaker[AsyncSession], conversation: str, message: int
) -> tuple[ChatMessage, ...]:
    """What a turn answering `message` sends (a Regenerate of it)."""
    return (await chat.regenerate(sessions, ALICE, conversation, message)).history


async def test_conversations_belong_to_their_owner(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    conversation = (
        await chat.start_conversation(sessions, ALICE, "  Hello\n  world  ")
    ).conversation_id
    assert [c.title for c in await sidebar.list_conversations(sessions, ALICE)] == ["Hello world"]
    assert await sidebar.list_conversations(sessions, BOB) == []
    for call in (
        chat.get_conversation(sessions, BOB, conversation),
        chat.add_user_message(sessions, BOB, conversation, "hi"),
        chat.regenerate(sessions, BOB, conversation, 1),
        chat.rename_conversation(sessions, BOB, conversation, "mine"),
        trash.mark_deleted(sessions, BOB, conversation, utcnow()),
        chat.load_exchanges(sessions, BOB, conversation),
        chat.get_turn(sessions, BOB, conversation, "nope"),
    ):
        with pytest.raises(NotFound):
            await call
    assert (await chat.get_conversation(sessions, ALICE, conversation)).title == "Hello world"


async def test_titles_are_cut_at_60_characters(sessions: async_sessionmaker[AsyncSession]) -> None:
    conversation = (await chat.start_conversation(sessions, ALICE, "word " * 40)).conversation_id
    title = (await chat.get_conversation(sessions, ALICE, conversation)).title
    assert len(title) <= 60 and title.endswith("…")


async def test_history_holds_the_latest_reply_with_text_per_message(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    start = await chat.start_conversation(sessions, ALICE, "one")
    conversation, first = start.conversation_id, start.user_message_id
    await _answer(sessions, conversation, first, "old answer")
    await _answer(sessions, conversation, first, "new answer")  # regenerated
    second = (await chat.add_user_message(sessions, ALICE, conversation, "two")).user_message_id
    await _answer(sessions, conversation, second, "", TurnStatus.FAILED)
    third = (await chat.add_user_message(sessions, ALICE, conversation, "three")).user_message_id
    await _answer(sessions, conversation, third, "partial", TurnStatus.STOPPED)
    added = await chat.add_user_message(sessions, ALICE, conversation, "four")
    fourth, sent = added.user_message_id, added.history

    history = await _history(sessions, conversation, fourth)
    assert sent == history
    assert history == (
        ChatMessage("user", "one"),
        ChatMessage("assistant", "new answer"),
        # "two" failed: its user message merges with the next so roles still alternate
        ChatMessage("user", "two\n\nthree"),
        ChatMessage("assistant", "partial"),
        ChatMessage("user", "four"),
    )
    # A reply regenerated later (its row is newer than "four") replaces the old one in history.
    await _answer(sessions, conversation, first, "newest answer")
    assert (await _history(sessions, conversation, fourth))[1] == ChatMessage(
        "assistant", "newest answer"
    )
    # Regenerating "one" sends only what came before it.
    assert await _history(sessions, conversation, first) == (ChatMessage("user", "one"),)


async def test_exchanges_pair_each_message_with_its_latest_turn(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    start = await chat.start_conversation(sessions, ALICE, "one")
    conversation, first = start.conversation_id, start.user_message_id
    await _answer(sessions, conversation, first, "old")
    latest = await _answer(sessions, conversation, first, "new")
    second = await chat.add_user_message(sessions, ALICE, conversation, "two")
    exchanges = await chat.load_exchanges(sessions, ALICE, conversation)
    assert [(e.user.id, e.turn.id if e.turn else None) for e in exchanges] == [
        (first, latest),
        (second.user_message_id, second.turn_id),  # every message is stored with its turn
    ]
    assert exchanges[0].reply is not None and exchanges[0].reply.content == "new"
    row = await chat.get_turn(sessions, ALICE, conversation, latest)
    assert row.turn.status == TurnStatus.OK


async def test_delete_removes_messages_and_turns(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    start = await chat.start_conversation(sessions, ALICE, "bye")
    conversation = start.conversation_id
    turn = await _answer(sessions, conversation, start.user_message_id, "ok")
    await trash.mark_deleted(sessions, ALICE, conversation, utcnow())
    with pytest.raises(NotFound):  # gone from every page at once...
        await chat.get_turn(sessions, ALICE, conversation, turn)
    assert await sidebar.list_conversations(sessions, ALICE) == []
    assert await trash.purge(sessions, ALICE, conversation)  # ...and from the database later
    async with read_scope(sessions) as session:
        for table in (Conversation, Message, Turn):
            assert (await session.scalars(select(table.id))).all() == [], table


async def test_a_message_and_its_turn_are_stored_together(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    first = await chat.start_conversation(sessions, ALICE, "one")
    assert first.history == (ChatMessage(role="user", content="one"),)
    await record_outcome(sessions, first.turn_id, _outcome(TurnStatus.OK, "answer"))
    with pytest.raises(NotFound):
        await chat.add_user_message(sessions, BOB, first.conversation_id, "two")
    second = await chat.add_user_message(sessions, ALICE, first.conversation_id, "two")
    assert second.history == (
        ChatMessage(role="user", content="one"),
        ChatMessage(role="assistant", content="answer"),
        ChatMessage(role="user", content="two"),
    )
    exchanges = await chat.load_exchanges(sessions, ALICE, first.conversation_id)
    assert [(e.user.id, e.turn and e.turn.id, e.turn and e.turn.status) for e in exchanges] == [
        (first.user_message_id, first.turn_id, TurnStatus.OK),
        (second.user_message_id, second.turn_id, TurnStatus.PENDING),
    ]
    assert exchanges[1].reply is not None and exchanges[1].reply.content == ""
