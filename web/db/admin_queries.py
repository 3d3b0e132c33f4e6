"""What the admin page reads: degraded, failed, queued and delayed turns and why, stats, one
turn in full.

What counts as degraded or failed, and the LoggedTurn rows, are web.db.logged_turns'; queued and
delayed turns and their jobs are web.db.admin_queue's; the tier mix is web.db.tier_mix's.
Primary-tier turns are never in the degraded and failed lists. Drill turns (turns.drill_id set)
are in none of the users' figures: not in the lists, the stats or the tier mix; they have a list
of their own (ListKind.DRILL, every status) and a count of their own (WindowStats.drill_turns).
All functions take a session (use web.db.session.read_scope) and return plain frozen dataclasses.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from web.db.admin_queue import DELAYED, QUEUED, JobView, jobs_of
from web.db.logged_turns import (
    DEGRADED,
    DRILL_TURNS,
    FAILED,
    USER_TURNS,
    LoggedTurn,
    logged,
    newest_first,
)
from web.db.models import Attempt, Conversation, Message, Turn
from web.status import LIVE_STATUSES, TurnStatus


class ListKind(StrEnum):
    DEGRADED = "degraded"
    FAILED = "failed"
    BOTH = "both"
    """Degraded and failed."""
    QUEUED = "queued"
    """Queued now: waiting for the deferral."""
    DELAYED = "delayed"
    """Answered by the deferral: their job is done."""
    DRILL = "drill"
    """Made by a drill, whatever their status (the others are users' turns only)."""


_KIND_CLAUSES = {
    ListKind.DEGRADED: DEGRADED,
    ListKind.FAILED: FAILED,
    ListKind.BOTH: or_(DEGRADED, FAILED),
    ListKind.QUEUED: QUEUED,
    ListKind.DELAYED: DELAYED,
    ListKind.DRILL: DRILL_TURNS,
}


@dataclass(frozen=True)
class TurnFilter:
    kind: ListKind = ListKind.DEGRADED
    tier: str | None = None
    reason: str | None = None
    """An error kind (e.g. "overloaded"): turns with at least one attempt that failed with it."""
    since: datetime | None = None
    until: datetime | None = None
    drill_id: str | None = None
    """One drill's turns (of the kind: its degraded ones, say) instead of the users'."""

    def where(self) -> list[ColumnElement[bool]]:
        clauses: list[ColumnElement[bool]] = [_KIND_CLAUSES[self.kind]]
        if self.drill_id:
            clauses.append(Turn.drill_id == self.drill_id)
        elif self.kind != ListKind.DRILL:
            clauses.append(USER_TURNS)
        if self.tier:
            clauses.append(Turn.tier == self.tier)
        if self.reason:
            clauses.append(
                select(Attempt.id)
                .where(Attempt.turn_id == Turn.id, Attempt.error_kind == self.reason)
                .exists()
            )
        if self.since is not None:
            clauses.append(Turn.started_at >= self.since)
        if self.until is not None:
            clauses.append(Turn.started_at < self.until)
        return clauses


@dataclass(frozen=True)
class Page:
    rows: tuple[LoggedTurn, ...]
    page: int
    per_page: int
    total: int
    jobs: Mapping[str, JobView] = field(default_factory=dict)
    """The deferred jobs of the rows that have one, by turn id."""

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages


@dataclass(frozen=True)
class WindowStats:
    label: str
    turns: int
    degraded: int
    failed: int
    live: int
    queued: int
    """Waiting for the deferral: not ended, so not in ``turns`` (like the live ones)."""
    per_tier: tuple[tuple[str, int], ...]
    """(tier, turns it answered), primary first."""
    drill_turns: int = 0
    """Drills' turns, of any status: in none of the figures above."""

    @property
    def degraded_share(self) -> float | None:
        return self.degraded / self.turns if self.turns else None


@dataclass(frozen=True)
class MessageView:
    id: int
    role: str
    content: str
    created_at: datetime
    turn_id: str | None


@dataclass(frozen=True)
class TurnDetail:
    turn: LoggedTurn
    conversation_title: str
    user_message_id: int
    messages: tuple[MessageView, ...]
    job: JobView | None


async def problem_turns(
    session: AsyncSession, filt: TurnFilter, *, page: int = 1, per_page: int = 25
) -> Page:
    """One page of the filter's turns, newest first, with their attempts and jobs."""
    where = filt.where()
    total = await session.scalar(select(func.count()).select_from(Turn).where(*where)) or 0
    page = max(1, min(page, max(1, math.ceil(total / per_page))))
    turns = (
        await session.scalars(
            newest_first(select(Turn).where(*where)).limit(per_page).offset((page - 1) * per_page)
        )
    ).all()
    rows = await logged(session, turns)
    return Page(rows, page, per_page, total, await jobs_of(session, [r.id for r in rows]))


async def turns_for_export(
    session: AsyncSession, filt: TurnFilter, *, limit: int = 50_000
) -> tuple[LoggedTurn, ...]:
    turns = (
        await session.scalars(newest_first(select(Turn).where(*filt.where())).limit(limit))
    ).all()
    return await logged(session, turns)


async def window_stats(
    session: AsyncSession, *, now: datetime, window: timedelta, label: str
) -> WindowStats:
    """Users' turn counts for the ``window`` before ``now``, and the drills' apart."""
    since = now - window
    in_window = (Turn.started_at >= since, Turn.started_at <= now)
    rows = await session.execute(
        select(Turn.status, Turn.tier, Turn.tier_index, func.count())
        .where(*in_window, USER_TURNS)
        .group_by(Turn.status, Turn.tier, Turn.tier_index)
    )
    drill_turns = (
        await session.scalar(select(func.count()).select_from(Turn).where(*in_window, DRILL_TURNS))
        or 0
    )
    turns = degraded = failed = live = queued = 0
    per_tier: dict[str, int] = defaultdict(int)
    order: dict[str, int] = {}
    for status, tier, tier_index, count in rows:
        if status in LIVE_STATUSES:
            live += count
            continue
        if status == TurnStatus.QUEUED:
            queued += count
            continue
        turns += count
        if status == TurnStatus.FAILED:
            failed += count
            continue
        if tier_index is not None and tier_index > 0:
            degraded += count
        if tier is not None:
            per_tier[tier] += count
            order[tier] = min(order.get(tier, tier_index or 0), tier_index or 0)
    tiers = sorted(per_tier, key=lambda t: (order[t], t))
    return WindowStats(
        label,
        turns,
        degraded,
        failed,
        live,
        queued,
        tuple((t, per_tier[t]) for t in tiers),
        drill_turns,
    )


async def known_tiers(session: AsyncSession) -> tuple[str, ...]:
    """Tiers that ever answered a user's turn, primary first."""
    rows = await session.execute(
        select(Turn.tier, func.min(Turn.tier_index))
        .where(Turn.tier.is_not(None), USER_TURNS)
        .group_by(Turn.tier)
    )
    return tuple(t for t, _ in sorted(rows, key=lambda r: (r[1] or 0, r[0] or "")) if t)


async def turn_detail(session: AsyncSession, turn_id: str) -> TurnDetail | None:
    turn = await session.get(Turn, turn_id)
    if turn is None:
        return None
    [row] = await logged(session, [turn])
    title = await session.scalar(
        select(Conversation.title).where(Conversation.id == turn.conversation_id)
    )
    messages = (
        await session.scalars(
            select(Message)
            .where(Message.conversation_id == turn.conversation_id)
            .order_by(Message.id)
        )
    ).all()
    return TurnDetail(
        row,
        title or "",
        turn.user_message_id,
        tuple(MessageView(m.id, m.role, m.content, m.created_at, m.turn_id) for m in messages),
        (await jobs_of(session, [turn.id])).get(turn.id),
    )
