"""A turn as the log keeps it, read back: LoggedTurn, its attempts, and why the tiers above failed.

A *degraded* turn was answered, fully or partly, by a tier below the primary (tier_index > 0):
status degraded, or stopped/interrupted while a lower tier was replying. A *failed* turn was
answered by no tier. Primary-tier turns are neither. A *drill turn* was made by a drill
(`understudy drill`, turns.drill_id): the admin page keeps it out of the users' figures and lists
it apart (USER_TURNS, DRILL_TURNS). These reads are shared by the admin page
(web.db.admin_queries) and `understudy turns`; all take a session (use
web.db.session.read_scope) and return plain frozen dataclasses, ready for templates and CSV.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from web.db.models import Attempt, Message, Turn
from web.status import TurnStatus

DEGRADED = and_(
    Turn.tier_index > 0,
    Turn.status.in_((TurnStatus.DEGRADED, TurnStatus.STOPPED, TurnStatus.INTERRUPTED)),
)
FAILED = Turn.status == TurnStatus.FAILED
USER_TURNS = Turn.drill_id.is_(None)
DRILL_TURNS = Turn.drill_id.is_not(None)


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
class LoggedTurn:
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
    drill_id: str | None = None
    """The drill that made it, if a drill did."""

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


async def recent_turns(
    session: AsyncSession, *, limit: int, degraded_only: bool = False
) -> tuple[LoggedTurn, ...]:
    """The latest turns of any status (for `understudy turns`), newest first."""
    query = select(Turn)
    if degraded_only:
        query = query.where(or_(DEGRADED, FAILED))
    turns = (await session.scalars(newest_first(query).limit(limit))).all()
    return await logged(session, turns)


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


def newest_first(query: Select[Turn]) -> Select[Turn]:
    return query.order_by(Turn.started_at.desc(), Turn.id.desc())


async def logged(session: AsyncSession, turns: Sequence[Turn]) -> tuple[LoggedTurn, ...]:
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
        LoggedTurn(
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
            t.drill_id,
        )
        for t in turns
    )
