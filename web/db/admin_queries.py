"""What the admin page reads: degraded and failed turns and why, stats, tier mix, one turn in full.

A *degraded* turn was answered, fully or partly, by a tier below the primary (tier_index > 0):
status degraded, or stopped/interrupted while a lower tier was replying. A *failed* turn was
answered by no tier. Primary-tier turns are never in either list. All functions take a session
(use web.db.session.read_scope) and return plain frozen dataclasses, ready for templates and CSV.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import ColumnElement, Select, and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from web.db.models import Attempt, Conversation, Message, Turn
from web.status import FINAL_STATUSES, LIVE_STATUSES, TurnStatus


class ListKind(StrEnum):
    DEGRADED = "degraded"
    FAILED = "failed"
    BOTH = "both"


DEGRADED = and_(
    Turn.tier_index > 0,
    Turn.status.in_((TurnStatus.DEGRADED, TurnStatus.STOPPED, TurnStatus.INTERRUPTED)),
)
FAILED = Turn.status == TurnStatus.FAILED


@dataclass(frozen=True)
class TurnFilter:
    kind: ListKind = ListKind.DEGRADED
    tier: str | None = None
    reason: str | None = None
    """An error kind (e.g. "overloaded"): turns with at least one attempt that failed with it."""
    since: datetime | None = None
    until: datetime | None = None

    def where(self) -> list[ColumnElement[bool]]:
        kinds = {ListKind.DEGRADED: DEGRADED, ListKind.FAILED: FAILED}
        clauses: list[ColumnElement[bool]] = [
            kinds[self.kind] if self.kind in kinds else or_(DEGRADED, FAILED)
        ]
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
class AttemptView:
    seq: int
    tier: str
    provider: str
    model: str
    started_at: datetime
    elapsed_ms: float
    ttft_ms: float | None
    outcome: str
    error_kind: str | None
    error_message: str | None
    http_status: int | None
    request_id: str | None
    retry_after_s: float | None
    after_text: bool

    @property
    def failure(self) -> str:
        """'sonnet: overloaded 529' (empty for a successful attempt)."""
        if self.outcome == "ok":
            return ""
        what = self.error_kind or self.outcome
        status = f" {self.http_status}" if self.http_status else ""
        after = " after text" if self.after_text else ""
        return f"{self.tier}: {what}{status}{after}"


@dataclass(frozen=True)
class TurnRow:
    id: str
    conversation_id: str
    started_at: datetime
    finished_at: datetime | None
    status: str
    tier: str | None
    tier_index: int | None
    provider: str | None
    model: str | None
    degraded_reason: str | None
    error_message: str | None
    ttft_ms: float | None
    total_ms: float | None
    input_tokens: int | None
    output_tokens: int | None
    attempt_count: int
    attempts: tuple[AttemptView, ...]

    @property
    def failures(self) -> tuple[AttemptView, ...]:
        return tuple(a for a in self.attempts if a.outcome == "failed")

    @property
    def failure_groups(self) -> tuple[tuple[str, int, str | None], ...]:
        """(failure, times in a row, error kind): a retried failure is listed once, counted."""
        groups: list[tuple[str, int, str | None]] = []
        for a in self.failures:
            if groups and groups[-1][0] == a.failure:
                text, count, kind = groups[-1]
                groups[-1] = (text, count + 1, kind)
            else:
                groups.append((a.failure, 1, a.error_kind))
        return tuple(groups)

    @property
    def why(self) -> str:
        """Why the tiers above the one that answered failed: 'sonnet: overloaded 529 x2; ...'."""
        return "; ".join(
            text if count == 1 else f"{text} x{count}" for text, count, _ in self.failure_groups
        )


@dataclass(frozen=True)
class Page:
    rows: tuple[TurnRow, ...]
    page: int
    per_page: int
    total: int

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
    per_tier: tuple[tuple[str, int], ...]
    """(tier, turns it answered), primary first."""

    @property
    def degraded_share(self) -> float | None:
        return self.degraded / self.turns if self.turns else None


@dataclass(frozen=True)
class MixBucket:
    start: datetime
    counts: tuple[tuple[str, int], ...]
    """(tier or "failed", turns), in the chart's series order; zero counts included."""

    @property
    def total(self) -> int:
        return sum(n for _, n in self.counts)


@dataclass(frozen=True)
class TierMix:
    series: tuple[str, ...]
    buckets: tuple[MixBucket, ...]
    bucket: timedelta


@dataclass(frozen=True)
class MessageView:
    id: int
    role: str
    content: str
    created_at: datetime
    turn_id: str | None


@dataclass(frozen=True)
class TurnDetail:
    turn: TurnRow
    conversation_title: str
    user_message_id: int
    messages: tuple[MessageView, ...]


FAILED_SERIES = "failed"


async def problem_turns(
    session: AsyncSession, filt: TurnFilter, *, page: int = 1, per_page: int = 25
) -> Page:
    """One page of degraded and/or failed turns, newest first, with their attempts."""
    where = filt.where()
    total = await session.scalar(select(func.count()).select_from(Turn).where(*where)) or 0
    page = max(1, min(page, max(1, math.ceil(total / per_page))))
    turns = (
        await session.scalars(
            _newest_first(select(Turn).where(*where)).limit(per_page).offset((page - 1) * per_page)
        )
    ).all()
    return Page(await _rows(session, turns), page, per_page, total)


async def turns_for_export(
    session: AsyncSession, filt: TurnFilter, *, limit: int = 50_000
) -> tuple[TurnRow, ...]:
    turns = (
        await session.scalars(_newest_first(select(Turn).where(*filt.where())).limit(limit))
    ).all()
    return await _rows(session, turns)


async def recent_turns(
    session: AsyncSession, *, limit: int, degraded_only: bool = False
) -> tuple[TurnRow, ...]:
    """The latest turns of any status (for `understudy turns`), newest first."""
    query = select(Turn)
    if degraded_only:
        query = query.where(or_(DEGRADED, FAILED))
    turns = (await session.scalars(_newest_first(query).limit(limit))).all()
    return await _rows(session, turns)


async def first_messages(session: AsyncSession, turn_ids: Sequence[str]) -> dict[str, str]:
    """turn id -> the user message it answered."""
    if not turn_ids:
        return {}
    rows = await session.execute(
        select(Turn.id, Message.content)
        .join(Message, Message.id == Turn.user_message_id)
        .where(Turn.id.in_(turn_ids))
    )
    return {turn_id: content for turn_id, content in rows}


async def replies(session: AsyncSession, turn_ids: Sequence[str]) -> dict[str, str]:
    """turn id -> its assistant message's text."""
    if not turn_ids:
        return {}
    rows = await session.execute(
        select(Message.turn_id, Message.content).where(
            Message.turn_id.in_(turn_ids), Message.role == "assistant"
        )
    )
    return {turn_id: content for turn_id, content in rows if turn_id is not None}


async def window_stats(
    session: AsyncSession, *, now: datetime, window: timedelta, label: str
) -> WindowStats:
    """Turn counts for the ``window`` before ``now``."""
    since = now - window
    rows = await session.execute(
        select(Turn.status, Turn.tier, Turn.tier_index, func.count())
        .where(Turn.started_at >= since, Turn.started_at <= now)
        .group_by(Turn.status, Turn.tier, Turn.tier_index)
    )
    turns = degraded = failed = live = 0
    per_tier: dict[str, int] = defaultdict(int)
    order: dict[str, int] = {}
    for status, tier, tier_index, count in rows:
        if status in LIVE_STATUSES:
            live += count
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
    return WindowStats(label, turns, degraded, failed, live, tuple((t, per_tier[t]) for t in tiers))


async def tier_mix(
    session: AsyncSession, *, now: datetime, window: timedelta, bucket: timedelta
) -> TierMix:
    """Finished turns per time bucket, split by the tier that answered (or failed)."""
    if bucket not in (timedelta(hours=1), timedelta(days=1)):
        raise ValueError("bucket must be one hour or one day")
    hourly = bucket == timedelta(hours=1)
    now = now.astimezone(UTC)
    first = _floor(now - window + bucket, hourly)
    key = _bucket_key(session, hourly).label("bucket")
    series_key = case((FAILED, FAILED_SERIES), else_=Turn.tier).label("series")
    rows = await session.execute(
        select(key, series_key, func.min(Turn.tier_index), func.count())
        .where(
            Turn.started_at >= first,
            Turn.started_at <= now,
            Turn.status.in_(FINAL_STATUSES),
            or_(Turn.tier.is_not(None), FAILED),
        )
        .group_by(key, series_key)
    )
    counts: dict[datetime, dict[str, int]] = defaultdict(dict)
    order: dict[str, int] = {}
    for raw_key, series, tier_index, count in rows:
        start = _parse_bucket(str(raw_key))
        counts[start][series] = count
        order[series] = 10_000 if series == FAILED_SERIES else (tier_index or 0)
    series_order = tuple(sorted(order, key=lambda s: (order[s], s)))
    buckets = []
    start = first
    while start <= now:
        got = counts.get(start, {})
        buckets.append(MixBucket(start, tuple((s, got.get(s, 0)) for s in series_order)))
        start += bucket
    return TierMix(series_order, tuple(buckets), bucket)


async def known_tiers(session: AsyncSession) -> tuple[str, ...]:
    """Tiers that ever answered a turn, primary first."""
    rows = await session.execute(
        select(Turn.tier, func.min(Turn.tier_index))
        .where(Turn.tier.is_not(None))
        .group_by(Turn.tier)
    )
    return tuple(t for t, _ in sorted(rows, key=lambda r: (r[1] or 0, r[0] or "")) if t)


async def turn_detail(session: AsyncSession, turn_id: str) -> TurnDetail | None:
    turn = await session.get(Turn, turn_id)
    if turn is None:
        return None
    [row] = await _rows(session, [turn])
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
    )


def _newest_first(query: Select[Turn]) -> Select[Turn]:
    return query.order_by(Turn.started_at.desc(), Turn.id.desc())


async def _rows(session: AsyncSession, turns: Sequence[Turn]) -> tuple[TurnRow, ...]:
    """Turns with their attempts, fetched in one query for the whole page."""
    ids = [t.id for t in turns]
    attempts: dict[str, list[AttemptView]] = defaultdict(list)
    if ids:
        for a in await session.scalars(
            select(Attempt).where(Attempt.turn_id.in_(ids)).order_by(Attempt.turn_id, Attempt.seq)
        ):
            attempts[a.turn_id].append(
                AttemptView(
                    a.seq,
                    a.tier,
                    a.provider,
                    a.model,
                    a.started_at,
                    a.elapsed_ms,
                    a.ttft_ms,
                    a.outcome,
                    a.error_kind,
                    a.error_message,
                    a.http_status,
                    a.request_id,
                    a.retry_after_s,
                    a.after_text,
                )
            )
    return tuple(
        TurnRow(
            t.id,
            t.conversation_id,
            t.started_at,
            t.finished_at,
            t.status,
            t.tier,
            t.tier_index,
            t.provider,
            t.model,
            t.degraded_reason,
            t.error_message,
            t.ttft_ms,
            t.total_ms,
            t.input_tokens,
            t.output_tokens,
            t.attempt_count,
            tuple(attempts.get(t.id, ())),
        )
        for t in turns
    )


def _bucket_key(session: AsyncSession, hourly: bool) -> ColumnElement[str]:
    """The UTC hour or day of Turn.started_at as text: '2026-05-01 13' or '2026-05-01'."""
    if session.get_bind().dialect.name == "postgresql":
        fmt = "YYYY-MM-DD HH24" if hourly else "YYYY-MM-DD"
        return func.to_char(func.timezone("UTC", Turn.started_at), fmt)
    # SQLite keeps UTC text ('2026-05-01 13:04:05.123456'), which strftime reads.
    return func.strftime("%Y-%m-%d %H" if hourly else "%Y-%m-%d", Turn.started_at)


def _parse_bucket(raw: str) -> datetime:
    fmt = "%Y-%m-%d %H" if " " in raw else "%Y-%m-%d"
    return datetime.strptime(raw, fmt).replace(tzinfo=UTC)


def _floor(moment: datetime, hourly: bool) -> datetime:
    if hourly:
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)
