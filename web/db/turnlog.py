"""The turn log: one write when a turn starts and one when it ends, never one per token.

open_turn writes the turn row in the transaction that stores the user's message, before any model
is called, so a turn row exists whatever happens next. While it streams, checkpoint_turns saves the reply so far now and
then (the runner decides when, at a bounded rate, off the token path), marking the turn
"streaming" with the tier that is answering. record_outcome writes the final state exactly once:
the first final write wins, and a later one (or a late checkpoint) changes nothing. Turns left
pending or streaming by a process that died become "interrupted" (web.processes: by a survivor
once its lease runs out, or at once by the next start on its machine), keeping the text of their
last checkpoint.

Error text is scrubbed of anything shaped like a credential (web.redact) before it is stored or
logged: no API key, bearer token or URL password reaches the database.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, Update, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from web.db.models import Attempt, DeferredJob, Message, Turn, new_id, utcnow
from web.db.session import Factory, session_scope
from web.events import AttemptRecord, TierInfo
from web.outcome import Answered, Crashed, CutShort, Queued, QueuedJob, TurnOutcome, Unanswered
from web.redact import redact
from web.status import LIVE_STATUSES, AttemptOutcome, JobState, TurnStatus
from web.wording import INTERRUPTED_MESSAGE

log = logging.getLogger(__name__)


def _redact_opt(text: str | None) -> str | None:
    return None if text is None else redact(text)


async def open_turn(
    session: AsyncSession,
    *,
    conversation_id: str,
    user_message_id: int,
    upgrade_of: str | None = None,
    drill_id: str | None = None,
    process_id: str | None = None,
) -> tuple[str, int]:
    """A pending turn and its (empty) assistant message, inside the caller's transaction (the one
    that stores the user's message, so that a reply starts after one commit, not two):
    (turn id, assistant message id). Every turn is made here. ``upgrade_of``: the degraded
    turn an "Ask Sonnet again" re-runs. ``drill_id``: the drill whose turn it is (web.drills).
    ``process_id``: the process that will run it (web.processes; None only in tests and tools,
    and such a turn is interrupted at the next start of any process)."""
    turn_id = new_id()
    now = utcnow()
    # The message refers to the turn, so the turn must be inserted first.
    await session.execute(
        insert(Turn).values(
            id=turn_id,
            conversation_id=conversation_id,
            user_message_id=user_message_id,
            status=TurnStatus.PENDING,
            attempt_count=0,
            started_at=now,
            upgrade_of=upgrade_of,
            drill_id=drill_id,
            process_id=process_id,
        )
    )
    message_id = await session.scalar(
        insert(Message)
        .values(
            conversation_id=conversation_id,
            role="assistant",
            content="",
            turn_id=turn_id,
            created_at=now,
        )
        .returning(Message.id)
    )
    assert message_id is not None
    return turn_id, message_id


@dataclass(frozen=True)
class Checkpoint:
    """A live turn's reply so far and the tier writing it."""

    turn_id: str
    text: str
    tier: TierInfo | None
    degraded_reason: str | None


async def checkpoint_turns(factory: Factory, checkpoints: Sequence[Checkpoint]) -> int:
    """Save the text of turns that are still live, in one transaction; returns how many.

    A turn that already has its final state is left alone, so a checkpoint that loses a race with
    record_outcome never overwrites the final text. The live rows are locked first (FOR UPDATE on
    PostgreSQL; SQLite writes one transaction at a time), in the same order record_outcome takes
    them: turn, then message.
    """
    if not checkpoints:
        return 0
    by_id = {c.turn_id: c for c in checkpoints}
    # Core tables, not the ORM classes: an executemany UPDATE by a non-key column.
    turns, messages = Turn.metadata.tables["turns"], Message.metadata.tables["messages"]
    async with session_scope(factory) as session:
        live = (
            await session.scalars(
                select(Turn.id)
                .where(Turn.id.in_(by_id), Turn.status.in_(LIVE_STATUSES))
                .order_by(Turn.id)
                .with_for_update()
            )
        ).all()
        if not live:
            return 0
        saved = [by_id[turn_id] for turn_id in live]
        connection = await session.connection()
        await connection.execute(
            update(turns)
            .where(turns.c.id == bindparam("b_id"))
            .values(
                status=TurnStatus.STREAMING,
                tier=bindparam("b_tier"),
                tier_index=bindparam("b_tier_index"),
                provider=bindparam("b_provider"),
                model=bindparam("b_model"),
                degraded_reason=bindparam("b_reason"),
            ),
            [
                {
                    "b_id": c.turn_id,
                    "b_tier": c.tier.name if c.tier else None,
                    "b_tier_index": c.tier.index if c.tier else None,
                    "b_provider": c.tier.provider if c.tier else None,
                    "b_model": c.tier.model if c.tier else None,
                    "b_reason": _redact_opt(c.degraded_reason),
                }
                for c in saved
            ],
        )
        await connection.execute(
            update(messages)
            .where(messages.c.turn_id == bindparam("b_id"), messages.c.role == "assistant")
            .values(content=bindparam("b_text")),
            [{"b_id": c.turn_id, "b_text": c.text} for c in saved],
        )
    return len(saved)


async def record_outcome(factory: Factory, turn_id: str, outcome: TurnOutcome) -> None:
    """The turn's final state, its reply text and one row per attempt, in one transaction."""
    status = outcome.status
    tier = outcome.tier
    tokens: tuple[int | None, int | None] = (None, None)
    job: QueuedJob | None = None
    match outcome.ending:
        case Answered(completed):
            tokens = (completed.input_tokens, completed.output_tokens)
        case Queued(job=job):
            pass
        case Unanswered() | CutShort() | Crashed():
            pass
    finished = utcnow()
    values = {
        "status": status,
        "tier": tier.name if tier else None,
        "tier_index": tier.index if tier else None,
        "provider": tier.provider if tier else None,
        "model": tier.model if tier else None,
        "degraded_reason": _redact_opt(outcome.degraded_reason),
        "error_message": _redact_opt(outcome.error),
        "ttft_ms": None if outcome.ttft_s is None else outcome.ttft_s * 1000,
        "total_ms": outcome.total_s * 1000,
        "input_tokens": tokens[0],
        "output_tokens": tokens[1],
        "hit_length_limit": outcome.hit_length_limit,
        "attempt_count": len(outcome.attempts),
        "finished_at": finished,
    }
    async with session_scope(factory) as session:
        # The status condition makes the first final write win even against a concurrent one.
        result = await session.execute(
            update(Turn)
            .where(Turn.id == turn_id, Turn.status.in_(LIVE_STATUSES))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 0:  # type: ignore[attr-defined]
            log.warning(
                "turn %s: not live (unknown or already final); outcome %s ignored", turn_id, status
            )
            return
        await session.execute(
            update(Message)
            .where(Message.turn_id == turn_id, Message.role == "assistant")
            .values(content=outcome.text)
            .execution_options(synchronize_session=False)
        )
        session.add_all(attempt_row(turn_id, seq, r) for seq, r in enumerate(outcome.attempts, 1))
        if job is not None:
            # The outbox: the job commits with the status that says the turn is queued, or not at all.
            add_job(session, turn_id, job, now=finished)
    _log_outcome(turn_id, status, tier, outcome.attempts, outcome.total_s)


def add_job(session: AsyncSession, turn_id: str, job: QueuedJob, *, now: datetime) -> None:
    """A queued turn's job, inside the transaction that marks it queued; due at once."""
    session.add(
        DeferredJob(
            turn_id=turn_id,
            backend=job.backend,
            state=JobState.WAITING,
            request=job.request_json,
            reason=json.dumps(list(job.unavailable)),
            queued_at=now,
            expires_at=now + timedelta(seconds=job.expire_s),
            next_at=now,
            submissions=0,
            polls=0,
        )
    )


def interrupt(*where: ColumnElement[bool]) -> Update:
    """The UPDATE that marks the live turns matching ``where`` interrupted.

    Their reply text (the last checkpoint) and the tier that was writing it stay as they are:
    the message row is not touched. The status condition makes it safe against a concurrent
    final write, and against the same UPDATE run by another process at the same moment.
    """
    return (
        update(Turn)
        .where(Turn.status.in_(LIVE_STATUSES), *where)
        .values(
            status=TurnStatus.INTERRUPTED,
            finished_at=utcnow(),
            error_message=INTERRUPTED_MESSAGE,
        )
        .execution_options(synchronize_session=False)
    )


async def interrupt_live_turns(factory: Factory) -> int:
    """Mark every pending or streaming turn interrupted, whichever process runs it (tests, and a
    database no process serves any more); the app itself sweeps by lease (web.processes)."""
    async with session_scope(factory) as session:
        result = await session.execute(interrupt())
        return int(result.rowcount)  # type: ignore[attr-defined]


def attempt_row(turn_id: str, seq: int, record: AttemptRecord) -> Attempt:
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
    status: TurnStatus,
    tier: TierInfo | None,
    records: Sequence[AttemptRecord],
    total_s: float | None,
) -> None:
    failures = ", ".join(
        f"{r.tier.name}:{r.error_kind.value if r.error_kind else r.outcome}"
        + (f"/{r.status}" if r.status else "")
        for r in records
        if r.outcome is not AttemptOutcome.OK
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
