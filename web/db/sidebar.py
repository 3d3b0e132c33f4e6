"""The sidebar's conversations: pages of them, newest activity first, each with its marker.

A conversation is WRITING while one of its turns is live in the database, and NEW when a turn
finished after its ``seen_at``, the last time its session had it on screen with nothing being
written. Both come from the turns table alone, so a reply counts the same whoever produced it
(the in-process runner today, a queue worker later).

Rendering the list for a page that shows a conversation (``current``) is what records that it
was seen: when the current one is NEW, its ``seen_at`` moves to now and it is listed IDLE. That
is the only write a GET makes; it hides a marker and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, and_, func, or_, select, update

from web.db.models import Conversation, Turn, utcnow
from web.db.session import Factory, read_scope, session_scope
from web.errors import Invalid
from web.status import LIVE_STATUSES, Activity, TurnStatus

LIST_LIMIT = 100
"""Conversations per page of the sidebar; "Show older" loads the next page."""
MAX_SHOWN = 10 * LIST_LIMIT
"""The most a refresh of the list brings back (a user who opened many pages keeps them)."""


@dataclass(frozen=True)
class ListedConversation:
    id: str
    title: str
    activity: Activity = Activity.IDLE


@dataclass(frozen=True)
class ConversationPage:
    """One page of a session's conversations, newest activity first."""

    rows: list[ListedConversation]
    older: str | None
    """The cursor of the next page (``before=``), None on the last one."""


def _cursor(updated_at: datetime, conversation_id: str) -> str:
    return f"{updated_at.isoformat()}~{conversation_id}"


def _parse_cursor(cursor: str) -> tuple[datetime, str]:
    stamp, _, conversation_id = cursor.partition("~")
    try:
        return datetime.fromisoformat(stamp), conversation_id
    except ValueError:
        raise Invalid("This list link is malformed; reload the page.") from None


def _listing(
    owner: str,
) -> Select[str, str, datetime, datetime | None, bool, datetime | None, bool]:
    live = (
        select(Turn.id)
        .where(Turn.conversation_id == Conversation.id, Turn.status.in_(LIVE_STATUSES))
        .exists()
    )
    queued = (
        select(Turn.id)
        .where(Turn.conversation_id == Conversation.id, Turn.status == TurnStatus.QUEUED)
        .exists()
    )
    landed = (
        select(func.max(Turn.finished_at))
        .where(Turn.conversation_id == Conversation.id)
        .scalar_subquery()
    )
    return select(
        Conversation.id,
        Conversation.title,
        Conversation.updated_at,
        Conversation.seen_at,
        live.label("live"),
        landed.label("landed_at"),
        queued.label("queued"),
    ).where(Conversation.owner == owner, Conversation.deleted_at.is_(None))


def _activity(
    live: bool, landed_at: datetime | None, seen_at: datetime | None, queued: bool = False
) -> Activity:
    if live:
        return Activity.WRITING
    if queued:
        return Activity.QUEUED
    if landed_at is not None and (seen_at is None or landed_at > seen_at):
        return Activity.NEW
    return Activity.IDLE


async def list_conversations(factory: Factory, owner: str) -> list[ListedConversation]:
    """The newest page's conversations."""
    return (await conversation_page(factory, owner)).rows


async def conversation_page(
    factory: Factory,
    owner: str,
    before: str | None = None,
    limit: int = LIST_LIMIT,
    *,
    current: str | None = None,
) -> ConversationPage:
    """A page of conversations: the newest, or those after the cursor ``before`` (keyset on
    updated_at and id, so a conversation touched meanwhile is neither lost nor shown twice
    within one walk down the list). ``current``: the conversation on screen, marked seen if NEW."""
    query = _listing(owner)
    if before:
        at, last_id = _parse_cursor(before)
        query = query.where(
            or_(
                Conversation.updated_at < at,
                and_(Conversation.updated_at == at, Conversation.id < last_id),
            )
        )
    limit = max(1, min(limit, MAX_SHOWN))
    ordered = query.order_by(Conversation.updated_at.desc(), Conversation.id.desc())
    async with read_scope(factory) as session:
        rows = (await session.execute(ordered.limit(limit + 1))).all()
        activity = {r.id: _activity(r.live, r.landed_at, r.seen_at, r.queued) for r in rows}
        if current is not None and current not in activity:
            # On screen but further down the list than this page: still to be marked seen.
            one = (await session.execute(_listing(owner).where(Conversation.id == current))).first()
            if one is not None:
                activity[current] = _activity(one.live, one.landed_at, one.seen_at, one.queued)
    if current is not None and activity.get(current) is Activity.NEW:
        await mark_seen(factory, owner, current)
        activity[current] = Activity.IDLE
    page = [ListedConversation(r.id, r.title, activity[r.id]) for r in rows[:limit]]
    older = _cursor(rows[limit - 1].updated_at, rows[limit - 1].id) if len(rows) > limit else None
    return ConversationPage(page, older)


async def mark_seen(factory: Factory, owner: str, conversation_id: str) -> None:
    """Every reply that finished until now has been on screen."""
    async with session_scope(factory) as session:
        await session.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id, Conversation.owner == owner)
            .values(seen_at=utcnow())
            .execution_options(synchronize_session=False)
        )
