"""Turns run in background tasks, not inside the request that shows them.

A turn starts when the user's message and its turn row are committed. Its task consumes the
chain's events, publishes them to the turn's live state (:mod:`web.live`), and when the turn ends
builds one :class:`~web.outcome.TurnOutcome`, stores it, and publishes it as the last update.
Pages and SSE streams only *watch* a live turn, so a closed tab or a reload never cancels or
repeats a model call; the text so far is saved now and then by :mod:`web.checkpoint`. Ending a
turn early is explicit:

- Stop (the user) cancels the task: the upstream call is cancelled, the partial text is kept and
  the turn is recorded "stopped".
- Shutdown cancels every task the same way and records the turns "interrupted".

A turn no tier could answer by unavailability is recorded "queued" with its deferred job, when the
chain file has a [deferral] table (web.deferral); the worker is then woken (``on_queued``).

Once its outcome is written, a turn leaves the runner; from then on the database is its truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Protocol

from web.chain import AttemptSink, TurnControl
from web.checkpoint import CHECKPOINT_S, Checkpointer
from web.db.session import Factory
from web.db.turnlog import record_outcome
from web.deferral import Deferral, request_to_json, unavailable_labels
from web.drill_faults import DrillFaults
from web.events import AttemptRecord, ChainEvent, Completed, Exhausted, TierInfo
from web.live import Finished, LiveTurn, LiveTurns, LocalLiveTurns
from web.metrics import Metrics
from web.outcome import (
    CutBy,
    QueuedJob,
    TurnOutcome,
    answered,
    crashed,
    cut_short,
    queued,
    unanswered,
)
from web.providers.base import ChatRequest
from web.status import TurnStatus

log = logging.getLogger(__name__)

DEADLINE_GRACE_S = 30.0
"""The chain enforces the turn deadline; this backstop only catches a chain that never ends."""
STOP_WAIT_S = 10.0


class TurnSource(Protocol):
    """What the runner needs of the chain: one turn's event stream (see :mod:`web.chain`)."""

    def run(
        self,
        request: ChatRequest,
        *,
        on_attempt: AttemptSink | None = None,
        control: TurnControl | None = None,
        primary_only: bool = False,
        drill: DrillFaults | None = None,
    ) -> AsyncGenerator[ChainEvent, None]: ...


@dataclass(frozen=True)
class TurnJob:
    """A committed turn row and what its model request is."""

    turn_id: str
    conversation_id: str
    request: ChatRequest
    upgrade_of: str | None = None
    """"Ask Sonnet again": the degraded turn this one re-runs (web.upgrades)."""
    drill: DrillFaults | None = None
    """A running drill's faults for this turn (web.drills): its own turn, or an instance-wide
    drill's."""
    drill_id: str | None = None
    """The drill whose own turn this is (the turn row's drill_id); None for users' turns, those
    an instance-wide drill's faults hit included. web.metrics counts it apart."""

    @property
    def primary_only(self) -> bool:
        """An upgrade may use the primary tier only: if it fails, the upgrade fails."""
        return self.upgrade_of is not None


@dataclass(eq=False)
class _Running:
    job: TurnJob
    live: LiveTurn
    task: asyncio.Task[None] | None = None
    stop_requested: bool = False
    finishing: bool = False
    """Set once the turn's end is known: from then on Stop has nothing to cancel, and the
    checkpoint must not overwrite the final write with stale text."""
    attempts: list[AttemptRecord] = field(default_factory=list)
    control: TurnControl = field(default_factory=TurnControl)


class TurnRunner:
    def __init__(
        self,
        chain: TurnSource,
        sessions: Factory,
        *,
        deadline_s: float,
        checkpoint_s: float = CHECKPOINT_S,
        live_turns: LiveTurns | None = None,
        deferral: Deferral | None = None,
        on_queued: Callable[[], None] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._chain = chain
        self._sessions = sessions
        self._deadline_s = deadline_s
        self.live_turns: LiveTurns = LocalLiveTurns() if live_turns is None else live_turns
        self._running: dict[str, _Running] = {}
        self._by_conversation: dict[str, _Running] = {}
        self._claimed: set[str] = set()
        self._deferral = deferral
        self._on_queued = on_queued
        self.metrics = metrics or Metrics()
        """What /metrics exports (web.metrics): the runner counts every turn it ends."""
        self._checkpointer = Checkpointer(sessions, self._to_checkpoint, interval_s=checkpoint_s)

    def __len__(self) -> int:
        return len(self._running)

    def is_running(self, turn_id: str) -> bool:
        return turn_id in self._running

    def live_in(self, conversation_id: str) -> str | None:
        """The id of the turn running in this conversation, if any."""
        running = self._by_conversation.get(conversation_id)
        return None if running is None else running.job.turn_id

    @contextlib.contextmanager
    def claim(self, conversation_id: str) -> Iterator[bool]:
        """Reserve a conversation for one new turn; yields False when it is busy.

        The check and the mark happen with nothing awaited in between, so two requests racing
        to start a reply (a double click, two tabs) cannot both pass: the second gets False.
        start() takes the claim over; leaving the block releases it, error or not.
        """
        if conversation_id in self._claimed or conversation_id in self._by_conversation:
            yield False
            return
        self._claimed.add(conversation_id)
        try:
            yield True
        finally:
            self._claimed.discard(conversation_id)

    def start(self, job: TurnJob) -> LiveTurn:
        live = self.live_turns.open(job.turn_id, job.conversation_id, upgrade_of=job.upgrade_of)
        running = _Running(job, live)
        self._running[job.turn_id] = running
        self._by_conversation[job.conversation_id] = running
        running.task = asyncio.create_task(self._run(running), name=f"turn-{job.turn_id}")
        self._checkpointer.ensure_running()
        return live

    async def stop(self, turn_id: str) -> bool:
        """Cancel a running turn and wait until its outcome is written; False if not running."""
        running = self._running.get(turn_id)
        if running is None or running.task is None:
            return False
        if not running.finishing:
            running.stop_requested = True
            running.task.cancel()
        await asyncio.wait([running.task], timeout=STOP_WAIT_S)
        return True

    def skip(self, turn_id: str, attempt: int) -> TierInfo | None:
        """The user's "Answer with ... now": abandon the try being waited for. Returns the tier
        asked next, or None when that try is no longer waited for (or there is no next tier)."""
        running = self._running.get(turn_id)
        if running is None or running.finishing:
            return None
        return running.control.skip(attempt)

    async def shutdown(self) -> None:
        """Cancel every running turn (recorded "interrupted", partial text kept); wait for them."""
        self._checkpointer.cancel()
        tasks = []
        for running in list(self._running.values()):
            if running.task is None:
                continue
            if not running.finishing:
                running.task.cancel()
            tasks.append(running.task)
        if tasks:
            log.info("stopping %d running turn(s)", len(tasks))
            await asyncio.wait(tasks, timeout=STOP_WAIT_S)

    def _to_checkpoint(self) -> list[LiveTurn]:
        return [r.live for r in self._running.values() if not r.finishing]

    def _attempt_ended(self, running: _Running, record: AttemptRecord) -> None:
        running.attempts.append(record)
        self.live_turns.publish(running.job.turn_id, record)

    async def _run(self, running: _Running) -> None:
        turn_id, live = running.job.turn_id, running.live
        started, started_at = time.monotonic(), time.time()
        end: Completed | Exhausted | None = None
        events = self._chain.run(
            running.job.request,
            on_attempt=lambda r: self._attempt_ended(running, r),
            control=running.control,
            primary_only=running.job.primary_only,
            drill=running.job.drill,
        )
        try:
            async with (
                asyncio.timeout(self._deadline_s + DEADLINE_GRACE_S),
                contextlib.aclosing(events),
            ):
                async for event in events:
                    if isinstance(event, Completed | Exhausted):
                        end = event
                    else:
                        self.live_turns.publish(turn_id, event)
        except asyncio.CancelledError:
            running.finishing = True
            if isinstance(end, Completed):
                # Stop or shutdown came while the finished chain was closing: the reply is whole.
                await self._finish(running, answered(end, running.attempts))
            else:
                by = CutBy.STOP if running.stop_requested else CutBy.SHUTDOWN
                total_s = time.monotonic() - started
                outcome = cut_short(
                    by,
                    live.text,
                    live.tier,
                    running.attempts,
                    started_at=started_at,
                    total_s=total_s,
                )
                await self._finish(running, outcome)
            raise
        except Exception:
            log.exception("turn %s failed unexpectedly", turn_id)
            end = None
        running.finishing = True
        total_s = time.monotonic() - started
        match end:
            case Completed():
                outcome = answered(end, running.attempts)
            case Exhausted():
                outcome = self._unanswered(running, end, started_at)
            case None:
                outcome = crashed(
                    live.text, running.attempts, started_at=started_at, total_s=total_s
                )
        await self._finish(running, outcome)

    def _unanswered(self, running: _Running, end: Exhausted, started_at: float) -> TurnOutcome:
        deferral = self._deferral
        # An upgrade is never queued: the reply it would replace is already there.
        upgrade = running.job.primary_only
        if deferral is None or upgrade or not deferral.accepts(running.attempts):
            return unanswered(end, running.attempts, started_at=started_at)
        request = replace(running.job.request, max_tokens=deferral.max_tokens)
        job = QueuedJob(
            backend=deferral.backend.value,
            request_json=request_to_json(request),
            unavailable=tuple(unavailable_labels(running.attempts)),
            expire_s=deferral.config.expire_s,
        )
        return queued(end, job, running.attempts, started_at=started_at)

    async def _finish(self, running: _Running, outcome: TurnOutcome) -> None:
        """Write the outcome, then tell the watchers, then leave the runner (in that order, so a
        page loaded after a watcher saw the end reads the final state from the database)."""
        turn_id = running.job.turn_id
        try:
            await record_outcome(self._sessions, turn_id, outcome)
        except Exception:
            log.exception("turn %s: could not record its outcome (%s)", turn_id, outcome.status)
        finally:
            self.live_turns.publish(turn_id, Finished(outcome))
            self._running.pop(turn_id, None)
            if self._by_conversation.get(running.job.conversation_id) is running:
                del self._by_conversation[running.job.conversation_id]
        self.metrics.turn_ended(outcome, drill=running.job.drill_id is not None)
        if outcome.status is TurnStatus.QUEUED and self._on_queued is not None:
            self._on_queued()
