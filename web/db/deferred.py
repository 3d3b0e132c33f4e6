"""Deferred jobs in the database: claiming them, recording each step, landing the reply.

Workers never hold a transaction across a network call. A worker *claims* due jobs (a lease:
``leased_by`` and ``lease_until``) in one short transaction: on PostgreSQL the candidate rows are
locked ``FOR UPDATE SKIP LOCKED``, so two workers never claim the same job; SQLite takes one
writer at a time (BEGIN IMMEDIATE), which serialises claims the same way. Every later write by
that worker is conditional on its lease, and a lease that runs out (the worker died) lets another
worker take the job over: it finds the stored ``batch_id`` and polls it instead of submitting
again.

The reply lands with one write conditional on the turn still being queued: a result fetched
twice, by a worker that lost its lease or after a Cancel, changes nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from web.db.models import Attempt, DeferredJob, Message, Turn
from web.db.session import Factory, read_scope, session_scope
from web.db.turnlog import attempt_row
from web.events import AttemptRecord, TierInfo
from web.redact import redact
from web.status import OPEN_JOB_STATES, JobState, TurnStatus
from web.wording import QUEUE_CANCELLED_NOTE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobRow:
    turn_id: str
    conversation_id: str
    backend: str
    state: JobState
    request_json: str
    unavailable: tuple[str, ...]
    queued_at: datetime
    expires_at: datetime
    turn_started_at: datetime
    batch_id: str | None
    submissions: int
    polls: int
    last_error: str | None
    drill: bool = False
    """A drill's turn (turns.drill_id is set): web.metrics counts it apart."""


def _row(job: DeferredJob, turn: Turn) -> JobRow:
    labels = json.loads(job.reason)
    return JobRow(
        turn_id=job.turn_id,
        conversation_id=turn.conversation_id,
        backend=job.backend,
        state=JobState(job.state),
        request_json=job.request,
        unavailable=tuple(str(label) for label in labels),
        queued_at=job.queued_at,
        expires_at=job.expires_at,
        turn_started_at=turn.started_at,
        batch_id=job.batch_id,
        submissions=job.submissions,
        polls=job.polls,
        last_error=job.last_error,
        drill=turn.drill_id is not None,
    )


async def claim_due(
    factory: Factory, worker: str, *, now: datetime, lease_s: float, limit: int = 20
) -> list[JobRow]:
    """Lease up to ``limit`` jobs that are due and not leased by a live worker."""
    async with session_scope(factory) as session:
        ids = (
            await session.scalars(
                select(DeferredJob.turn_id)
                .where(
                    DeferredJob.state.in_(OPEN_JOB_STATES),
                    DeferredJob.next_at <= now,
                    (DeferredJob.lease_until.is_(None)) | (DeferredJob.lease_until < now),
                )
                .order_by(DeferredJob.next_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()
        if not ids:
            return []
        await session.execute(
            update(DeferredJob)
            .where(DeferredJob.turn_id.in_(ids))
            .values(leased_by=worker, lease_until=now + timedelta(seconds=lease_s))
            .execution_options(synchronize_session=False)
        )
        rows = (
            await session.execute(
                select(DeferredJob, Turn)
                .join(Turn, Turn.id == DeferredJob.turn_id)
                .where(DeferredJob.turn_id.in_(ids))
            )
        ).all()
        return [_row(job, turn) for job, turn in rows]


async def _append_attempts(
    session: AsyncSession, turn_id: str, records: Sequence[AttemptRecord]
) -> None:
    if not records:
        return
    last = await session.scalar(select(func.max(Attempt.seq)).where(Attempt.turn_id == turn_id))
    session.add_all(attempt_row(turn_id, (last or 0) + i, r) for i, r in enumerate(records, 1))
    await session.execute(
        update(Turn)
        .where(Turn.id == turn_id)
        .values(attempt_count=Turn.attempt_count + len(records))
        .execution_options(synchronize_session=False)
    )


def _mine(turn_id: str, worker: str) -> object:
    return (DeferredJob.turn_id == turn_id) & (DeferredJob.leased_by == worker)


async def record_step(
    factory: Factory,
    turn_id: str,
    worker: str,
    *,
    attempts: Sequence[AttemptRecord],
    next_at: datetime,
    state: JobState | None = None,
    batch_id: str | bool | None = False,
    submitted: datetime | None = None,
    polled: bool = False,
    error: str | None = None,
) -> bool:
    """One step of a job by the worker that leased it: its attempt row, the job's new state and
    when to look again; the lease is released. ``batch_id=False`` leaves it as it is. A state
    change never overrides a Cancel that came meanwhile. False if the lease was lost."""
    values: dict[str, object] = {"next_at": next_at, "leased_by": None, "lease_until": None}
    if batch_id is not False:
        values["batch_id"] = batch_id
    if submitted is not None:
        values["submitted_at"] = submitted
        values["submissions"] = DeferredJob.submissions + 1
        values["polls"] = 0
    if polled:
        values["polls"] = DeferredJob.polls + 1
    if error is not None:
        values["last_error"] = redact(error)
    async with session_scope(factory) as session:
        result = await session.execute(
            update(DeferredJob)
            .where(_mine(turn_id, worker))  # type: ignore[arg-type]
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 0:  # type: ignore[attr-defined]
            return False
        if state is not None:
            await session.execute(
                update(DeferredJob)
                .where(DeferredJob.turn_id == turn_id, DeferredJob.state != JobState.CANCELLING)
                .values(state=state)
                .execution_options(synchronize_session=False)
            )
        await _append_attempts(session, turn_id, attempts)
    return True


@dataclass(frozen=True)
class Landing:
    text: str
    tier: TierInfo
    model: str
    reason: str
    input_tokens: int | None
    output_tokens: int | None
    hit_length_limit: bool


async def _end_queued(session: AsyncSession, turn_id: str, **values: object) -> bool:
    """The one write that ends a queued turn (landed, failed or cancelled): conditional on it
    still being queued, so whichever comes first wins and the others change nothing."""
    result = await session.execute(
        update(Turn)
        .where(Turn.id == turn_id, Turn.status == TurnStatus.QUEUED)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def _close_job(
    session: AsyncSession,
    turn_id: str,
    state: JobState,
    now: datetime,
    *,
    worker: str | None = None,
) -> None:
    """The job's last state; its lease released. ``worker``: only if that worker holds it."""
    mine = _mine(turn_id, worker) if worker is not None else DeferredJob.turn_id == turn_id
    await session.execute(
        update(DeferredJob)
        .where(mine)  # type: ignore[arg-type]
        .values(state=state, finished_at=now, leased_by=None, lease_until=None)
        .execution_options(synchronize_session=False)
    )


async def land(
    factory: Factory,
    job: JobRow,
    worker: str,
    landing: Landing,
    attempts: Sequence[AttemptRecord],
    *,
    now: datetime,
) -> bool:
    """Write the reply of a queued turn, once: True if it landed (the turn was still queued)."""
    async with session_scope(factory) as session:
        landed = await _end_queued(
            session,
            job.turn_id,
            status=TurnStatus.DEGRADED,
            tier=landing.tier.name,
            tier_index=landing.tier.index,
            provider=landing.tier.provider or None,
            model=landing.model,
            degraded_reason=landing.reason,
            error_message=None,
            total_ms=(now - job.turn_started_at).total_seconds() * 1000,
            input_tokens=landing.input_tokens,
            output_tokens=landing.output_tokens,
            hit_length_limit=landing.hit_length_limit,
            finished_at=now,
        )
        if landed:
            await session.execute(
                update(Message)
                .where(Message.turn_id == job.turn_id, Message.role == "assistant")
                .values(content=landing.text)
                .execution_options(synchronize_session=False)
            )
            await _append_attempts(session, job.turn_id, attempts)
        await _close_job(session, job.turn_id, JobState.DONE if landed else JobState.CANCELLED, now)
    return landed


async def fail(
    factory: Factory,
    job: JobRow,
    message: str,
    attempts: Sequence[AttemptRecord],
    *,
    now: datetime,
) -> bool:
    """End a queued turn as failed (expired, or refused for good): True if it was still queued."""
    async with session_scope(factory) as session:
        failed = await _end_queued(
            session,
            job.turn_id,
            status=TurnStatus.FAILED,
            error_message=redact(message),
            degraded_reason=None,
            total_ms=(now - job.turn_started_at).total_seconds() * 1000,
            finished_at=now,
        )
        if failed:
            await _append_attempts(session, job.turn_id, attempts)
        await _close_job(
            session, job.turn_id, JobState.FAILED if failed else JobState.CANCELLED, now
        )
    return failed


async def cancel(factory: Factory, turn_id: str, *, now: datetime) -> bool:
    """The user's Cancel: the turn ends "stopped" at once; the job is withdrawn (a worker still
    cancels its batch request, if it has one). False if the turn was not queued any more."""
    async with session_scope(factory) as session:
        stopped = await _end_queued(
            session,
            turn_id,
            status=TurnStatus.STOPPED,
            error_message=QUEUE_CANCELLED_NOTE,
            degraded_reason=None,
            finished_at=now,
        )
        if not stopped:
            return False
        job = await session.get(DeferredJob, turn_id)
        if job is not None:
            busy = job.batch_id is not None or job.leased_by is not None
            job.state = JobState.CANCELLING if busy else JobState.CANCELLED
            job.next_at = now
            if not busy:
                job.finished_at = now
    return True


async def finish_cancel(
    factory: Factory, turn_id: str, worker: str, attempts: Sequence[AttemptRecord], *, now: datetime
) -> None:
    async with session_scope(factory) as session:
        await _close_job(session, turn_id, JobState.CANCELLED, now, worker=worker)
        await _append_attempts(session, turn_id, attempts)


async def queued_in(session: AsyncSession, conversation_id: str) -> str | None:
    """The turn queued in this conversation, if any (it holds the conversation)."""
    return await session.scalar(
        select(Turn.id)
        .where(Turn.conversation_id == conversation_id, Turn.status == TurnStatus.QUEUED)
        .limit(1)
    )


async def turn_status(factory: Factory, turn_id: str) -> TurnStatus | None:
    async with read_scope(factory) as session:
        status = await session.scalar(select(Turn.status).where(Turn.id == turn_id))
    return None if status is None else TurnStatus(status)


async def next_due(factory: Factory) -> datetime | None:
    """When the next open job is due (a worker's sleep ends then at the latest)."""
    async with read_scope(factory) as session:
        return await session.scalar(
            select(func.min(DeferredJob.next_at)).where(DeferredJob.state.in_(OPEN_JOB_STATES))
        )
