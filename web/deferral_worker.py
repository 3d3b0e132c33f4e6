"""The deferral worker: takes due jobs, submits, polls with backoff, lands replies (web.deferral).

It runs inside `understudy serve` by default, and alone as `understudy worker`; any number may
run against one database (web.db.deferred says how they never take the same job). One look at a
job is one step, written with its attempt row before the next:

    waiting     submit             -> submitted (batch id stored), or landed (retry backend),
                                      or a miss: waiting again after a jittered backoff, or failed
    submitted   poll               -> pending (look again after poll_s, doubling up to max_poll_s;
                                      the batch's own status is what decides), landed, or a miss
    cancelling  cancel the batch   -> cancelled
    any open job past expires_at   -> failed, with words that say so (and its batch cancelled)

The clock is injected (``clock``: Unix time), so tests step it instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from web.db import deferred as jobs
from web.db.deferred import JobRow, Landing
from web.db.session import Factory
from web.deferral import Deferral, request_from_json
from web.deferral_backends import Answer, Backend, Miss, Pending, Step, Submitted
from web.deferral_config import Backend as BackendKind
from web.events import AttemptRecord, TierInfo
from web.metrics import Metrics
from web.providers.base import ErrorKind
from web.status import AttemptOutcome, JobState, TurnStatus
from web.wording import delayed_reason, queue_expired_message, queue_rejected_message

log = logging.getLogger(__name__)

LEASE_S = 120.0
"""How long a claimed job is a worker's; a worker that died lets it go after this."""
IDLE_S = 5.0
"""The longest a worker sleeps between looks for due jobs (it is woken when one is queued)."""
CLOSE_WAIT_S = 10.0
CLAIM = 10
"""Jobs claimed in one look; their steps run one after the other within the lease."""


def _capped(now: datetime, seconds: float, job: JobRow) -> datetime:
    """The next look, never after the job expires (it is failed at that look)."""
    return min(now + timedelta(seconds=seconds), job.expires_at)


def worker_name() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}"


class DeferralWorker:
    def __init__(
        self,
        sessions: Factory,
        deferral: Deferral,
        backend: Backend,
        *,
        name: str | None = None,
        clock: Callable[[], float] = time.time,
        lease_s: float = LEASE_S,
        claim: int = CLAIM,
        idle_s: float = IDLE_S,
        on_done: Callable[[str], None] | None = None,
        rng: Callable[[], float] = random.random,
        metrics: Metrics | None = None,
    ) -> None:
        self._sessions = sessions
        self._deferral = deferral
        self._backend = backend
        self.name = name or worker_name()
        self._clock = clock
        self._lease_s = lease_s
        self._claim = claim
        self._idle_s = idle_s
        self._on_done = on_done
        self._rng = rng
        self._metrics = metrics
        """Where a queued turn's end is counted (web.metrics); None in `understudy worker`,
        which serves no /metrics."""
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._began: datetime | None = None
        """When the step in progress began (its attempt record's start)."""

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def wake(self) -> None:
        """A job was queued or cancelled: look now rather than at the next idle tick."""
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="deferral-worker")

    async def close(self) -> None:
        """Stop after the step in progress (a step cut between its request and its write would
        leave a batch the job does not know of), or after ``CLOSE_WAIT_S`` at the latest."""
        if self._task is not None:
            self._stopping = True
            self._wake.set()
            done, _ = await asyncio.wait([self._task], timeout=CLOSE_WAIT_S)
            if not done:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None
        await self._backend.aclose()

    async def _loop(self) -> None:
        while not self._stopping:
            try:
                await self.run_once()
            except Exception:
                log.exception("deferral worker %s: a look at the queue failed", self.name)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(await self._sleep_s()):
                    await self._wake.wait()

    async def _sleep_s(self) -> float:
        due = await jobs.next_due(self._sessions)
        if due is None:
            return self._idle_s
        return min(self._idle_s, max(0.05, (due - self._now()).total_seconds()))

    async def run_once(self) -> int:
        """Claim the jobs due now and take one step with each; returns how many."""
        claimed = await jobs.claim_due(
            self._sessions, self.name, now=self._now(), lease_s=self._lease_s, limit=self._claim
        )
        for job in claimed:
            if self._stopping:
                break  # the leases run out, and the next worker takes them
            try:
                await self._step(job)
            except Exception:
                # The lease runs out and the job is looked at again: nothing is lost.
                log.exception("deferred turn %s: a step failed", job.turn_id)
        return len(claimed)

    async def _step(self, job: JobRow) -> None:
        now = self._now()
        self._began = now
        if job.state is JobState.CANCELLING:
            await self._backend.cancel(job)
            record = self._record(now, AttemptOutcome.CANCELLED, request_id=job.batch_id)
            await jobs.finish_cancel(
                self._sessions, job.turn_id, self.name, [record] if job.batch_id else [], now=now
            )
            return
        if now >= job.expires_at:
            await self._backend.cancel(job)
            expired = self._record(
                now, AttemptOutcome.FAILED, kind=ErrorKind.TIMEOUT, message="queue expired"
            )
            message = queue_expired_message(
                queued_at=job.queued_at.timestamp(),
                expire_s=self._deferral.config.expire_s,
                last_error=job.last_error,
            )
            if await jobs.fail(self._sessions, job, message, [expired], now=now):
                self._counted(job, TurnStatus.FAILED)
            self._done(job)
            return
        if job.state is JobState.WAITING:
            step = await self._backend.submit(job, request_from_json(job.request_json))
        else:
            step = await self._backend.poll(job)
        await self._apply(job, step, submitting=job.state is JobState.WAITING)

    async def _apply(self, job: JobRow, step: Step, *, submitting: bool) -> None:
        now = self._now()
        config = self._deferral.config
        submitted = now if submitting else None
        match step:
            case Submitted(batch_id):
                await jobs.record_step(
                    self._sessions,
                    job.turn_id,
                    self.name,
                    attempts=[self._record(now, AttemptOutcome.SUBMITTED, request_id=batch_id)],
                    next_at=_capped(now, config.poll_s, job),
                    state=JobState.SUBMITTED,
                    batch_id=batch_id,
                    submitted=submitted,
                )
            case Pending(status, error):
                wait = min(config.max_poll_s, config.poll_s * 2 ** (job.polls + 1))
                record = self._record(
                    now,
                    AttemptOutcome.PENDING,
                    request_id=job.batch_id,
                    kind=error.kind if error else None,
                    message=error.message if error else status,
                )
                await jobs.record_step(
                    self._sessions,
                    job.turn_id,
                    self.name,
                    attempts=[record],
                    next_at=_capped(now, wait, job),
                    polled=True,
                    error=error.message if error else None,
                )
            case Answer() as answer:
                await self._land(job, answer, now)
            case Miss(final=True) as miss:
                records = [*miss.attempts, *self._miss_record(job, miss, now)]
                message = queue_rejected_message(miss.error)
                if await jobs.fail(self._sessions, job, message, records, now=now):
                    self._tried(job, records)
                    self._counted(job, TurnStatus.FAILED)
                self._done(job)
            case Miss() as miss:
                tries = job.submissions + (1 if submitting else 0)
                step_s = min(config.max_poll_s * 5, config.poll_s * 2**tries)
                wait = step_s * (0.5 + 0.5 * self._rng())
                log.warning(
                    "deferred turn %s: %s; sending again in %.0f s", job.turn_id, miss.error, wait
                )
                await jobs.record_step(
                    self._sessions,
                    job.turn_id,
                    self.name,
                    attempts=[*miss.attempts, *self._miss_record(job, miss, now)],
                    next_at=_capped(now, wait, job),
                    state=JobState.WAITING,
                    batch_id=None,
                    submitted=submitted,
                    error=miss.error,
                )
                self._tried(job, miss.attempts)

    def _miss_record(self, job: JobRow, miss: Miss, now: datetime) -> list[AttemptRecord]:
        if miss.attempts:  # the retry backend's own tries already say what happened
            return []
        return [
            self._record(
                now,
                AttemptOutcome.FAILED,
                request_id=job.batch_id,
                kind=miss.kind,
                message=miss.error,
            )
        ]

    async def _land(self, job: JobRow, answer: Answer, now: datetime) -> None:
        via = (
            self._deferral.info.label
            if self._deferral.backend is BackendKind.ANTHROPIC_BATCH
            else f"{answer.tier.label}, on a retry,"
        )
        reason = delayed_reason(
            queued_at=job.queued_at.timestamp(),
            unavailable=job.unavailable,
            via=via,
            waited_s=(now - job.queued_at).total_seconds(),
        )
        landing = Landing(
            text=answer.text,
            tier=self._deferral.info,
            model=answer.model,
            reason=reason,
            input_tokens=answer.input_tokens,
            output_tokens=answer.output_tokens,
            hit_length_limit=answer.hit_length_limit,
        )
        records = list(answer.attempts) or [
            self._record(now, AttemptOutcome.OK, request_id=job.batch_id)
        ]
        landed = await jobs.land(self._sessions, job, self.name, landing, records, now=now)
        if landed:
            log.info("deferred turn %s: the reply landed", job.turn_id)
            self._tried(job, records)
            self._counted(job, TurnStatus.DEGRADED, tier=self._deferral.info)
            self._done(job)

    def _counted(self, job: JobRow, status: TurnStatus, *, tier: TierInfo | None = None) -> None:
        if self._metrics is not None:
            self._metrics.queued_turn_ended(tier, status, drill=job.drill)

    def _tried(self, job: JobRow, records: Sequence[AttemptRecord]) -> None:
        if self._metrics is not None:
            self._metrics.tried(records, drill=job.drill)

    def _done(self, job: JobRow) -> None:
        if self._on_done is not None:
            self._on_done(job.turn_id)

    def _record(
        self,
        now: datetime,
        outcome: AttemptOutcome,
        *,
        request_id: str | None = None,
        kind: ErrorKind | None = None,
        message: str | None = None,
    ) -> AttemptRecord:
        began = self._began or now
        return AttemptRecord(
            tier=self._deferral.info,
            attempt=0,
            started_at=began.timestamp(),
            elapsed_s=max(0.0, (now - began).total_seconds()),
            ttft_s=None,
            outcome=outcome,
            error_kind=kind,
            error_message=message,
            request_id=request_id,
        )
