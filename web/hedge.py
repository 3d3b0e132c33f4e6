"""Hedged first tokens: a try that has sent no text after its tier's ``hedge_after_s`` gets a
second try beside it, on the next tier worth asking, and the first of the two to stream text
answers ("The Tail at Scale": hedge on the first token, commit to the first stream that speaks).

How a :class:`Race` works. The chain hands it a try as it starts. Until that try's first text
arrives, its stream is read in a task of its own (``_first_text``), so the race can stop waiting
for a while without cancelling the read (cancelling it would end the HTTP request):

1. It waits for the first of: the try's first text, its failure, its first-token (or total, or
   turn) limit, the user's "Answer with ... now", or the hedge time.
2. At the hedge time it asks the chain for a hedge (``start_hedge``: the budget, the tiers still
   worth asking and their breakers decide; the chain may say no). There is at most one hedge per
   try, and only before any text of the turn was shown (the chain does not race otherwise).
3. The first stream with text wins (the try the page shows wins a tie). Every other try is
   cancelled: its read task is cancelled and its stream closed (the provider's ``aclose()``, which
   closes its HTTP request), and it is recorded "cancelled", lost the hedge. The winner's first
   text is returned to the chain, which reads the rest of its stream itself, as for any try.
4. A try that fails before any text only ends itself: the other goes on as the only try. If the
   try the page shows fails, or the user abandons it, the hedge *takes over* (:class:`Takeover`):
   the chain shows it from then on (one TierStarted). A failure of a kind that ends the turn (a
   bad request, a refusal: the chain's ``_FINAL``) ends the hedge with it.

The consumer only ever sees the winner: no event is yielded for a hedge until it wins or takes
over, and the records of tries that end during the race are handed to the turn (``on_attempt``)
only when the race step returns, after every await, so a watcher never reads a loser's record
before the event it goes with ("Waiting for Sonnet…" stays while both run). The chain records the
one try the race settles on, as it records every try; the race records every other one.

:class:`HedgeBudget` bounds the extra load: at most ``share`` (10 %) of a tier's turns in the last
``window_s`` (a minute) start a hedge. It counts in this process only: with several processes each
keeps the bound for its own turns, so the bound holds for their sum as well.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from web.attempts import Try
from web.events import AttemptRecord, TextDelta
from web.providers.base import ErrorKind, ProviderError, Usage
from web.status import AttemptOutcome
from web.turn import Turn
from web.wording import ended_hedge_note, lost_hedge_note

__all__ = ["HedgeBudget", "Race", "Settled", "Takeover"]

logger = logging.getLogger(__name__)

Report = Callable[[AttemptRecord, bool], Awaitable[None]]
ReportLater = Callable[[AttemptRecord, bool], None]


class HedgeBudget:
    """At most ``share`` of a tier's turns in the last ``window_s`` start a hedge: a hedge may
    start only if, counting it, hedges stay within that share of the turns in the window (so a
    tier needs 10 turns a minute before the first one, at 10 %)."""

    def __init__(
        self,
        share: float = 0.1,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0.0 <= share <= 1.0:
            raise ValueError("a hedge budget is a share of turns, from 0 to 1")
        self._share = share
        self._window_s = window_s
        self._clock = clock
        self._turns: dict[str, deque[float]] = {}
        self._hedges: dict[str, deque[float]] = {}

    def count_turn(self, tier: str) -> None:
        """A turn tries ``tier`` (once per turn, retries aside)."""
        self._window(self._turns, tier).append(self._clock())

    def allows(self, tier: str) -> bool:
        turns = len(self._window(self._turns, tier))
        hedges = len(self._window(self._hedges, tier))
        return hedges + 1 <= self._share * turns + 1e-9  # 0.1 * 30 is 3.0000000000000004

    def spend(self, tier: str) -> None:
        """A hedge of ``tier`` starts."""
        self._window(self._hedges, tier).append(self._clock())

    def _window(self, times: dict[str, deque[float]], tier: str) -> deque[float]:
        window = times.setdefault(tier, deque())
        horizon = self._clock() - self._window_s
        while window and window[0] <= horizon:
            window.popleft()
        return window


@dataclass(frozen=True)
class Takeover:
    """The try shown so far is over (it failed, or the user abandoned it) and recorded; ``now``,
    the hedge, is the only try left: the chain shows it and steps the race again."""

    now: Try


@dataclass(frozen=True)
class Settled:
    """The race is over: ``winner`` is the one try left; every other one is closed and recorded.

    ``first``: its first text (already in its attempt), None if its stream ended without text;
    ``error``: it failed before any text (or timed out) and was the last one; neither, and not
    ``first``: it was abandoned by the user (its watchdog is expired, so the chain reads nothing).
    ``unshown``: it is the hedge and won while the other was shown: the chain must show it."""

    winner: Try
    first: TextDelta | None = None
    error: ProviderError | None = None
    unshown: bool = False


@dataclass(eq=False)
class _Lane:
    run: Try
    task: asyncio.Task[TextDelta | None]
    soft: float
    """Loop time: its first-token limit."""
    recorded: bool = False
    stopping: bool = False
    """Its read task was cancelled (once: a second cancel would cut its stream's own cleanup)."""


@dataclass(eq=False)
class Race:
    """One try, and the hedge it may get, raced to their first text (see the module docstring)."""

    first: Try
    turn: Turn
    hedge_at: float | None
    """Loop time at which a hedge is asked for (None: asked already)."""
    start_hedge: Callable[[], Awaitable[Try | None]]
    abandoned: Callable[[int], bool]
    """The user gave up on this attempt number (web.chain.TurnControl)."""
    ends_turn: Callable[[ProviderError], bool]
    report: Report
    report_later: ReportLater
    _lanes: list[_Lane] = field(default_factory=list, init=False)
    """The tries still running, the shown one first."""
    _held: list[AttemptRecord] = field(default_factory=list, init=False)
    _wake: asyncio.Future[None] | None = field(default=None, init=False)
    _recorded: set[int] = field(default_factory=set, init=False)
    """Attempt numbers the race has recorded."""

    def __post_init__(self) -> None:
        self._lanes.append(self._lane(self.first))

    def expire_now(self) -> None:
        """The user abandoned the shown try (what TurnControl calls; a Watchdog's method too)."""
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def next(self) -> Takeover | Settled:
        try:
            return await self._step()
        finally:
            self._flush()

    def recorded(self, run: Try) -> bool:
        """The race has recorded how ``run`` ended (the chain must not record it again, even
        when the consumer goes away in the middle of a step)."""
        return run.number in self._recorded

    async def close(self, keep: Try) -> None:
        """The chain is done with the race, however it ended: stop every read still going, close
        every stream but ``keep``'s (the chain closes and records that one itself), and record
        the others "cancelled" (the consumer went away while they ran)."""
        try:
            for lane in list(self._lanes):
                if lane.run is not keep and not lane.recorded:
                    self._hold(lane, lane.run.attempt.record(AttemptOutcome.CANCELLED))
                await self._stop(lane)
                if lane.run is not keep:
                    await lane.run.close()
                self._lanes.remove(lane)
        finally:
            self._flush()

    def _lane(self, run: Try) -> _Lane:
        loop = self.turn.loop
        task = loop.create_task(_first_text(run), name=f"first-text-{run.tier.info.name}")
        return _Lane(run, task, loop.time() + run.attempt.config.timeouts.first_token_s)

    async def _step(self) -> Takeover | Settled:
        loop = self.turn.loop
        while True:
            shown = self._lanes[0]
            if self.abandoned(shown.run.number):
                return await self._abandon(shown)
            if self._wake is None or self._wake.done():
                self._wake = loop.create_future()
            until = min(min(lane.soft, lane.run.hard) for lane in self._lanes)
            if self.hedge_at is not None:
                until = min(until, self.hedge_at)
            waits: set[asyncio.Future[Any]] = {lane.task for lane in self._lanes}
            waits.add(self._wake)
            timeout = max(0.0, until - loop.time())
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if self.abandoned(shown.run.number):
                continue
            now = loop.time()
            failures: list[tuple[_Lane, ProviderError]] = []
            for lane in self._lanes:  # the shown one first: it wins a tie
                if lane.task.done():
                    error = _error_of(lane)
                    if error is None:
                        return await self._won(lane, lane.task.result())
                    failures.append((lane, error))
                elif now >= min(lane.soft, lane.run.hard):
                    late = self.turn.timeout_error(lane.run.attempt, lane.soft, lane.run.hard)
                    failures.append((lane, late))
            # The hedge's failure first: if both failed, the shown one is then the last try,
            # and the chain handles its failure as any other.
            for lane, error in reversed(failures):
                step = await self._failed(lane, error)
                if step is not None:
                    return step
            if self.hedge_at is not None and now >= self.hedge_at:
                self.hedge_at = None
                hedge = await self.start_hedge()
                if hedge is not None:
                    self._lanes.append(self._lane(hedge))

    async def _won(self, lane: _Lane, first: TextDelta | None) -> Settled:
        if first is not None:
            lane.run.attempt.text(first.text)  # at once: from now on "Answer ... now" is too late
        unshown = lane is not self._lanes[0]
        for other in self._lanes:
            if other is lane:
                continue
            error = _error_of(other) if other.task.done() else None
            if error is not None:  # it failed meanwhile: that is how it ended, not the hedge
                await self._record_failure(other, error)
            else:
                note = lost_hedge_note(lane.run.tier.info)
                self._hold(other, other.run.attempt.record(AttemptOutcome.CANCELLED, note))
        await self._drop_all(but=lane)
        return Settled(lane.run, first=first, unshown=unshown)

    async def _failed(self, lane: _Lane, error: ProviderError) -> Takeover | Settled | None:
        shown = lane is self._lanes[0]
        if len(self._lanes) == 1:
            await self._stop(lane)
            self._lanes.clear()
            return Settled(lane.run, error=error)
        if shown and self.ends_turn(error):
            for other in self._lanes[1:]:
                note = ended_hedge_note(lane.run.tier.info, error.kind)
                self._hold(other, other.run.attempt.record(AttemptOutcome.CANCELLED, note))
            await self._drop_all(but=lane)
            return Settled(lane.run, error=error)
        await self._record_failure(lane, error)
        await self._drop(lane)
        return Takeover(self._lanes[0].run) if shown else None

    async def _record_failure(self, lane: _Lane, error: ProviderError) -> None:
        """A try that failed while the other goes on."""
        record = self.turn.failed_record(lane.run.attempt, error)
        self._hold(lane, record)
        await self.report(record, lane.run.probe)
        self.turn.exclude_after(lane.run.tier.config, error)
        if lane is not self._lanes[0]:
            self.turn.spend(lane.run.tier.config)  # the hedge had its try; do not ask it again

    async def _abandon(self, shown: _Lane) -> Takeover | Settled:
        if len(self._lanes) == 1:
            await self._stop(shown)
            self._lanes.clear()
            shown.run.watchdog.expire_now()  # the chain reads nothing more of it
            return Settled(shown.run)
        hedge = self._lanes[1].run
        record = self.turn.abandoned_record(shown.run.attempt, hedge.tier.info)
        self._hold(shown, record)
        self.report_later(record, shown.run.probe)
        await self._drop(shown)
        return Takeover(hedge)

    def _hold(self, lane: _Lane, record: AttemptRecord) -> None:
        """Record ``lane``'s end now; the turn hears of it when this step returns."""
        lane.recorded = True
        self._recorded.add(lane.run.number)
        self._held.append(record)
        if record.outcome is AttemptOutcome.CANCELLED:
            self.report_later(record, lane.run.probe)  # frees a probe; nothing else to count

    def _flush(self) -> None:
        held, self._held = self._held, []
        for record in held:
            self.turn.add(record)

    async def _drop_all(self, *, but: _Lane) -> None:
        for other in list(self._lanes):
            if other is not but:
                await self._drop(other)
        self._lanes.clear()

    async def _drop(self, lane: _Lane) -> None:
        await self._stop(lane)
        await lane.run.close()
        if lane in self._lanes:
            self._lanes.remove(lane)

    async def _stop(self, lane: _Lane) -> None:
        """End the lane's read task (and with it the stream's pending read), and wait for it."""
        task = lane.task
        if not task.done() and not lane.stopping:
            lane.stopping = True
            task.cancel()
        await asyncio.wait([task])
        if not task.cancelled():
            task.exception()  # retrieved: the race has dealt with it


async def _first_text(run: Try) -> TextDelta | None:
    """Read ``run``'s stream up to its first text; None if it ended without any (a whole, empty
    reply). Runs in a task of its own; the chain reads the rest in its own task."""
    attempt = run.attempt
    while True:
        try:
            item = await anext(run.stream)
        except StopAsyncIteration:
            if attempt.usage is None:
                raise ProviderError(
                    ErrorKind.TRUNCATED, "the provider's stream ended without usage"
                ) from None
            return None
        if isinstance(item, Usage):
            attempt.usage = item
        elif item.text:
            return item


def _error_of(lane: _Lane) -> ProviderError | None:
    """The failure of a lane whose read ended (None: it has text or ended cleanly)."""
    exc = lane.task.exception()
    if exc is None or isinstance(exc, ProviderError):
        return exc
    # A provider bug must not end the turn without an event (as in the chain).
    logger.error("provider %s raised a non-ProviderError", lane.run.tier.info.name, exc_info=exc)
    return ProviderError(ErrorKind.SERVER_ERROR, f"unexpected {type(exc).__name__}: {exc}")
