"""The turn log: one write when a turn starts and one when it ends, never one per token.

start_turn runs after the user's message is committed and before any model is called, so a turn
row exists whatever happens next. record_outcome writes the final state exactly once: the first
final write wins, and a later one (e.g. after interrupt_live_turns at start) changes nothing.
Turns left pending or streaming by a stopped server become "interrupted" at the next start.

Error text is scrubbed of anything shaped like a credential (web.redact) before it is stored or
logged: no API key, bearer token or URL password reaches the database.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from web.db.models import Attempt, Message, Turn, TurnStatus, new_id, utcnow
from web.db.session import session_scope
from web.events import AttemptRecord, Completed, Exhausted, TierInfo
from web.redact import redact

log = logging.getLogger(__name__)

Factory = async_sessionmaker[AsyncSession]


def _redact_opt(text: str | None) -> str | None:
    return None if text is None else redact(text)


async def start_turn(
    factory: Factory, *, conversation_id: str, user_message_id: int
) -> tuple[str, int]:
    """A pending turn and its (empty) assistant message, in one transaction."""
    turn_id = new_id()
    async with session_scope(factory) as session:
        session.add(
            Turn(
                id=turn_id,
                conversation_id=conversation_id,
                user_message_id=user_message_id,
                status=TurnStatus.PENDING,
                attempt_count=0,
                started_at=utcnow(),
            )
        )
        # The message refers to the turn, so the turn must be inserted first.
        await session.flush()
        message = Message(
            conversation_id=conversation_id, role="assistant", content="", turn_id=turn_id
        )
        session.add(message)
        await session.flush()
        message_id = message.id
    return turn_id, message_id


async def record_outcome(
    factory: Factory,
    turn_id: str,
    *,
    status: str,
    text: str,
    completed: Completed | None = None,
    exhausted: Exhausted | None = None,
    attempts: Sequence[AttemptRecord] = (),
    tier: TierInfo | None = None,
    error_message: str | None = None,
    total_s: float | None = None,
) -> None:
    """The turn's final state, its reply text and one row per attempt, in one transaction."""
    if status not in TurnStatus.FINAL:
        raise ValueError(f"status must be one of {', '.join(TurnStatus.FINAL)}, not {status!r}")
    if completed is not None:
        status = _status_for(completed, status, turn_id)
        tier = tier or completed.tier
    if status == TurnStatus.FAILED:
        tier = None  # Turn.tier is the tier that answered; the tiers tried are in the attempts
    records = tuple(attempts) or (
        completed.attempts if completed else exhausted.attempts if exhausted else ()
    )
    if total_s is None:
        total_s = completed.total_s if completed else exhausted.total_s if exhausted else None
    if error_message is None and exhausted is not None:
        error_message = exhausted.message

    finished = utcnow()
    async with session_scope(factory) as session:
        started = await session.scalar(
            select(Turn.started_at).where(Turn.id == turn_id, Turn.status.in_(TurnStatus.LIVE))
        )
        if started is None:
            log.warning(
                "turn %s: not live (unknown or already final); outcome %s ignored", turn_id, status
            )
            return
        values = {
            "status": status,
            "tier": tier.name if tier else None,
            "tier_index": tier.index if tier else None,
            "provider": tier.provider if tier else None,
            "model": tier.model if tier else None,
            "degraded_reason": _degraded_reason(completed, tier, records),
            "error_message": _redact_opt(error_message),
            "ttft_ms": _turn_ttft_ms(completed, records, started),
            "total_ms": (total_s * 1000 if total_s is not None else _ms_between(started, finished)),
            "input_tokens": completed.input_tokens if completed else None,
            "output_tokens": completed.output_tokens if completed else None,
            "attempt_count": len(records),
            "finished_at": finished,
        }
        # The status condition makes the first final write win even against a concurrent one.
        result = await session.execute(
            update(Turn)
            .where(Turn.id == turn_id, Turn.status.in_(TurnStatus.LIVE))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 0:  # type: ignore[attr-defined]
            log.warning("turn %s: finished concurrently; outcome %s ignored", turn_id, status)
            return
        await session.execute(
            update(Message)
            .where(Message.turn_id == turn_id, Message.role == "assistant")
            .values(content=text)
            .execution_options(synchronize_session=False)
        )
        session.add_all(_attempt_row(turn_id, seq, r) for seq, r in enumerate(records, 1))
    _log_outcome(turn_id, status, tier, records, total_s)


async def interrupt_live_turns(factory: Factory) -> int:
    """Mark turns a previous server left pending or streaming as interrupted; their text stays."""
    async with session_scope(factory) as session:
        result = await session.execute(
            update(Turn)
            .where(Turn.status.in_(TurnStatus.LIVE))
            .values(
                status=TurnStatus.INTERRUPTED,
                finished_at=utcnow(),
                error_message="The server stopped before this reply finished.",
            )
            .execution_options(synchronize_session=False)
        )
        count = int(result.rowcount)  # type: ignore[attr-defined]
    if count:
        log.warning("marked %d unfinished turn(s) from a previous run as interrupted", count)
    return count


def _status_for(completed: Completed, status: str, turn_id: str) -> str:
    if status not in (TurnStatus.OK, TurnStatus.DEGRADED):
        return status  # e.g. the reply completed but the user had already pressed Stop
    expected = TurnStatus.DEGRADED if completed.degraded else TurnStatus.OK
    if status != expected:
        log.warning(
            "turn %s: status %s does not match tier %s; storing %s",
            turn_id,
            status,
            completed.tier.name,
            expected,
        )
    return expected


def _degraded_reason(
    completed: Completed | None, tier: TierInfo | None, records: Sequence[AttemptRecord]
) -> str | None:
    if completed is not None and completed.degraded_reason:
        return redact(completed.degraded_reason)
    if tier is None or tier.is_primary:
        return None
    failed = [r for r in records if r.outcome == "failed" and r.tier.index < tier.index]
    if not failed:
        return f"{tier.label} answered."
    why = "; ".join(
        f"{r.tier.label} {r.error_kind.phrase if r.error_kind else 'failed'}"
        + (f" ({r.status})" if r.status else "")
        for r in failed
    )
    return f"{tier.label} answered because the tiers above failed: {why}."


def _turn_ttft_ms(
    completed: Completed | None, records: Sequence[AttemptRecord], started: datetime
) -> float | None:
    if completed is not None:
        return None if completed.ttft_s is None else completed.ttft_s * 1000
    # Stopped or interrupted: the first token of the last attempt, measured from the turn start.
    last = records[-1] if records else None
    if last is None or last.ttft_s is None:
        return None
    return max(0.0, (last.started_at + last.ttft_s - started.timestamp()) * 1000)


def _ms_between(start: datetime, end: datetime) -> float:
    return max(0.0, (end - start).total_seconds() * 1000)


def _attempt_row(turn_id: str, seq: int, record: AttemptRecord) -> Attempt:
    return Attempt(
        turn_id=turn_id,
        seq=seq,
        tier=record.tier.name,
        provider=record.tier.provider,
        model=record.tier.model,
        started_at=datetime.fromtimestamp(record.started_at, UTC),
        elapsed_ms=record.elapsed_s * 1000,
        ttft_ms=None if record.ttft_s is None else record.ttft_s * 1000,
        outcome=record.outcome,
        error_kind=record.error_kind.value if record.error_kind else None,
        error_message=_redact_opt(record.error_message),
        http_status=record.status,
        request_id=record.request_id,
        retry_after_s=record.retry_after,
        after_text=record.after_text,
    )


def _log_outcome(
    turn_id: str,
    status: str,
    tier: TierInfo | None,
    records: Sequence[AttemptRecord],
    total_s: float | None,
) -> None:
    failures = ", ".join(
        f"{r.tier.name}:{r.error_kind.value if r.error_kind else r.outcome}"
        + (f"/{r.status}" if r.status else "")
        for r in records
        if r.outcome != "ok"
    )
    quiet = (TurnStatus.OK, TurnStatus.STOPPED)
    level = logging.INFO if status in quiet else logging.WARNING
    log.log(
        level,
        "turn %s %s tier=%s attempts=%d total=%s%s",
        turn_id,
        status,
        tier.name if tier else "-",
        len(records),
        f"{total_s:.2f}s" if total_s is not None else "-",
        f" failures=[{failures}]" if failures else "",
    )
