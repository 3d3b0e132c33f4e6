"""The fallback chain: tiers tried in order, one typed event stream out (see :mod:`web.events`).

Policy, all of it here:

- Move to the next tier on: rate limit, quota exhausted, overload, other 5xx (and 408/409),
  connection errors, timeouts, in-stream error events, truncated or malformed streams.
- Timeouts are the chain's: each ``__anext__`` on a provider stream runs under a deadline
  (:mod:`web.watchdog`), the tier's ``first_token_s`` until the first text, then ``idle_s``;
  the attempt is also bounded by the tier's ``total_s`` and the turn by ``deadline_s``
  (``Settings.turn_deadline_s``). A hanging upstream is cut by the first-token timeout; nothing
  waits past the turn deadline, and no attempt starts after it.
- At most one same-tier retry per tier and turn, only before any text was shown, only for a try
  that failed within ``retry_after_cap_s`` (one that kept the user waiting longer moves on), and
  only for a transient error (``_TRANSIENT``): overloaded, server error, connection error (after a
  full-jitter sleep, ``uniform(0, backoff_s)``), or rate limited with a retry-after; a
  retry-after is honoured when it is at most ``retry_after_cap_s`` (the sleep is retry-after
  plus the jitter) and means "move on at once" when longer. Quota exhausted, timeouts, truncated
  and malformed streams move on at once: waiting for them does not help, and a timed-out tier
  already cost its timeout.
- Do not move on (``_FINAL``) for a bad request (it fails everywhere), an unknown model (404: a
  configuration error to fix) or a content-policy refusal (never retried, on this model or any
  other; the provider's reason is shown).
- Which tiers are still worth trying (``_Turn.admits``): after a context-too-long, only tiers
  whose ``context_window`` is larger than the failed tier's (none left: a clear error); after a
  401/403, only tiers that use another ``api_key_env``.
- A failure after text was shown moves to the next tier (never a same-tier retry); that tier's
  TierStarted has ``restart=True`` so consumers drop the partial text, and only the reply that
  completes is ever in Completed.
- Each tier's request asks for at most the tier's ``max_output_tokens``. A reply that reaches it
  is complete but cut: Completed carries ``hit_length_limit=True`` (never a silent success, never
  a fallback: another tier would be cut the same way).
- The user may abandon a try that has sent no text yet ("Answer with Haiku now", through
  :class:`TurnControl`): it ends at once as "abandoned" (its HTTP request closed) and the chain
  moves to the next tier, which each TierStarted names in ``next``. It is not a failure: no
  retry, and no tier is excluded because of it.
- Each tier has a circuit breaker (:mod:`web.breaker`, when the chain is given ``breakers``):
  a tier whose breaker is open is not tried; its skip is an AttemptRecord "skipped" that says
  since when and why, so the page and the log tell the truth. A half-open breaker lets exactly
  one live try through as a probe. If every tier still worth trying is open, the one that opened
  first is tried anyway rather than refusing without trying anything.
- A drill's turn (``drill``, web.drills) reads its tiers through the drill's faults
  (web.drill_faults); a drill of its own turns neither asks nor tells the breakers, so it can
  never open a breaker for real users (an instance-wide drill uses them like any turn).
- Hedged first tokens (opt-in per tier, ``hedge_after_s``; :mod:`web.hedge` says how): a try
  that has sent no text by then gets the next tier worth asking (and whose breaker lets it
  through) started beside it, within a budget of 10 % of the tier's turns in the last minute
  (:class:`web.hedge.HedgeBudget`). The first stream with text answers; the other is closed and
  recorded "cancelled", lost the hedge. Consumers see only the winner: no TierStarted for a hedge
  until it wins or is the only try left (the other failed, or the user abandoned it); the
  winner's degraded reason says the other "was slow to answer". Never once text was shown in
  the turn. A hedge that fails first only ends itself, and its tier is not asked again in the
  turn; the winner goes on as any try (a failure after text moves to the tier after it).
- A turn may be limited to the primary tier (``run(..., primary_only=True)``: "Ask Sonnet again",
  the upgrade of a degraded reply, see :mod:`web.upgrades`). The other tiers are then not worth
  trying (``Turn.admits``): no fallback, no hedge, no "Answer with ... now", and no last-resort
  try of an open primary (the reply being upgraded is kept, so refusing is better than asking a
  tier known to be down). The primary still gets its one same-tier retry; when it fails, the
  turn ends Exhausted, as it would with no tier left. Such a turn must never be deferred.
- The stream ends with exactly one Completed or Exhausted.
- Every try ends in exactly one AttemptRecord, handed to ``on_attempt`` when it ends: "ok",
  "failed", "abandoned", "skipped" (breaker open), or "cancelled" when the consumer goes away
  (``aclose()`` or task cancellation, which also closes the upstream HTTP response) or the try
  lost a hedge. A callback and not an event, because it is the one channel that also reaches a
  consumer that is closing the stream: a generator being closed cannot yield.

What users read about all this (the degraded reason, the final messages) is in :mod:`web.wording`;
how tiers are built from settings is in :mod:`web.tiers`; what a turn keeps while it runs (its
clock, its records, the tiers still worth trying) is in :mod:`web.turn`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncGenerator, Sequence
from dataclasses import replace

from web.attempts import Try
from web.breaker import Verdict
from web.breaker_store import Breakers
from web.control import TurnControl
from web.drill_faults import DrillFaults
from web.events import AttemptRecord, ChainEvent, TierInfo, TierStarted
from web.hedge import HedgeBudget, Race, Takeover
from web.providers.base import ChatRequest, ErrorKind, ProviderError, Usage
from web.settings import Settings
from web.status import AttemptOutcome, HedgeRole
from web.tiers import Tier, build_tiers
from web.turn import AttemptSink, Turn
from web.watchdog import Expired, Watchdog
from web.wording import final_message

__all__ = ["AttemptSink", "Chain", "TurnControl"]

logger = logging.getLogger(__name__)

_MIN_ATTEMPT_S = 0.01
"""Do not start an attempt with less time than this left before the turn deadline."""

_TRANSIENT = frozenset({ErrorKind.OVERLOADED, ErrorKind.SERVER_ERROR, ErrorKind.CONNECTION})
_FINAL = frozenset({ErrorKind.BAD_REQUEST, ErrorKind.NOT_FOUND, ErrorKind.CONTENT_POLICY})


class Chain:
    def __init__(
        self,
        tiers: Sequence[Tier],
        *,
        deadline_s: float = 120.0,
        rng: random.Random | None = None,
        retry_after_cap_s: float = 2.0,
        backoff_s: float = 0.25,
        breakers: Breakers | None = None,
        hedge_budget: HedgeBudget | None = None,
    ) -> None:
        if not tiers:
            raise ValueError("a chain needs at least one tier")
        self._tiers = tuple(tiers)
        self._breakers = breakers
        self._hedges = hedge_budget or HedgeBudget()
        self._reports: set[asyncio.Task[None]] = set()
        self._deadline_s = deadline_s
        self._rng = rng or random.Random()
        self._retry_after_cap_s = retry_after_cap_s
        self._backoff_s = backoff_s

    @classmethod
    def from_settings(cls, settings: Settings, breakers: Breakers | None = None) -> Chain:
        return cls(build_tiers(settings), deadline_s=settings.turn_deadline_s, breakers=breakers)

    @property
    def breakers(self) -> Breakers | None:
        return self._breakers

    @property
    def tiers(self) -> tuple[Tier, ...]:
        return self._tiers

    @property
    def deadline_s(self) -> float:
        return self._deadline_s

    async def aclose(self) -> None:
        for tier in self._tiers:
            await tier.provider.aclose()

    async def run(
        self,
        request: ChatRequest,
        *,
        on_attempt: AttemptSink | None = None,
        control: TurnControl | None = None,
        primary_only: bool = False,
        drill: DrillFaults | None = None,
    ) -> AsyncGenerator[ChainEvent, None]:
        """One turn. Close it with ``aclose()`` (or ``contextlib.aclosing``) if you stop early.
        ``primary_only``: the primary tier alone may answer (an upgrade). ``drill``: the faults
        of a running drill, in front of the tiers' providers (web.drill_faults)."""
        only = frozenset({self._tiers[0].info.name}) if primary_only else None
        turn = Turn(asyncio.get_running_loop(), self._deadline_s, on_attempt, only=only)
        turn.drill = drill
        turn.breakers = None if drill is not None and drill.quiet_breakers else self._breakers
        control = control or TurnControl()
        restart = retried = shown_text = False
        index = 0
        while turn.remaining() > _MIN_ATTEMPT_S:
            found = next((i for i in range(index, len(self._tiers)) if self._admits(i, turn)), None)
            if found is None:
                break
            if found != index:
                index, retried = found, False
            tier = self._tiers[index]
            probe = False
            if turn.breakers is not None:
                admission = await turn.breakers.admit(tier.info.name)
                if admission.verdict is Verdict.SKIP and not await self._last_resort(index, turn):
                    if not retried:  # a retry of a try that just opened it: that try says why
                        turn.skipped(tier, admission)
                    index, retried = index + 1, False
                    continue
                probe = admission.verdict is not Verdict.PASS
            current = self._begin(index, turn, request, probe)
            race = None if shown_text else self._race(current, turn, control, request, retried)
            control._begin(current.attempt, race or current.watchdog, current.next_tier)
            soft = 0.0
            try:
                # Inside the try: a consumer that goes away right here still gets the
                # attempt's "cancelled" record.
                yield _started(current, restart=restart, retry=retried)
                restart = False
                if race is not None:
                    while isinstance(step := await race.next(), Takeover):
                        current = step.now
                        control._begin(current.attempt, race, current.next_tier)
                        yield _started(current)
                    current = step.winner
                    if step.unshown:
                        yield _started(current)
                    if step.error is not None:
                        raise step.error
                    if step.first is not None:
                        yield step.first
                # The rest is read inline, not in a helper generator: every layer of async
                # generator costs each token a few microseconds.
                attempt, stream, watchdog, hard = (
                    current.attempt,
                    current.stream,
                    current.watchdog,
                    current.hard,
                )
                timeouts = attempt.config.timeouts
                while True:
                    wait = timeouts.idle_s if attempt.parts else timeouts.first_token_s
                    soft = turn.loop.time() + wait
                    try:
                        item = await watchdog.next(stream, min(soft, hard))
                    except StopAsyncIteration:
                        break
                    if isinstance(item, Usage):
                        attempt.usage = item
                    elif item.text:
                        attempt.text(item.text)
                        yield item
                if attempt.usage is None:
                    raise ProviderError(
                        ErrorKind.TRUNCATED, "the provider's stream ended without usage"
                    )
            except ProviderError as exc:
                current.attempt.error = exc
            except Expired:
                if not control.abandoned(current.number):
                    current.attempt.error = turn.timeout_error(current.attempt, soft, current.hard)
            except Exception as exc:  # a provider bug must not end the turn without an event
                logger.exception("provider %s raised a non-ProviderError", current.tier.info.name)
                current.attempt.error = ProviderError(
                    ErrorKind.SERVER_ERROR, f"unexpected {type(exc).__name__}: {exc}"
                )
            except BaseException:  # the consumer went away: aclose() or cancellation
                if race is None or not race.recorded(current):
                    cancelled = turn.end(current.attempt, AttemptOutcome.CANCELLED)
                    if current.probe:  # free the probe now, not when it times out
                        self._report_later(turn, cancelled, True)
                raise
            finally:
                control._end()
                if race is not None:
                    await race.close(keep=current)
                await current.close()

            if current.index != index:  # the hedge answered: the chain is at its tier now
                index, retried = current.index, False
            attempt = current.attempt
            if control.abandoned(attempt.number):
                await self._report(turn, turn.abandoned(attempt, current.next_tier), current.probe)
                index, retried = index + 1, False
                continue
            error = attempt.error
            if error is None:
                completed = turn.completed(attempt)
                await self._report(turn, turn.records[-1], current.probe)
                yield completed
                return
            await self._report(turn, turn.failed(attempt, error), current.probe)
            restart = attempt.after_text
            shown_text = shown_text or restart
            if error.kind in _FINAL:
                yield turn.exhausted(final_message(current.tier.config, error), error.kind)
                return
            waited = turn.loop.time() - attempt.start
            # One retry, and only for a try that failed fast: one that already kept the user
            # waiting longer than a retry would (a connection closed after seconds of silence)
            # moves on.
            fresh = not (retried or attempt.after_text or waited > self._retry_after_cap_s)
            delay = self._retry_delay(error) if fresh else None
            if delay is None or delay >= turn.remaining():
                turn.exclude_after(current.tier.config, error)
                index, retried = index + 1, False
                continue
            retried = True
            await asyncio.sleep(delay)
        yield turn.exhausted_summary(out_of_time=turn.remaining() <= _MIN_ATTEMPT_S)

    def _admits(self, index: int, turn: Turn) -> bool:
        return turn.admits(self._tiers[index].config)

    def _begin(self, index: int, turn: Turn, request: ChatRequest, probe: bool) -> Try:
        tier = self._tiers[index]
        attempt = turn.begin(tier)
        # Creating the stream sends nothing: the request goes out when it is first read.
        tier_request = replace(request, max_tokens=tier.config.max_output_tokens)
        provider = tier.provider
        if turn.drill is not None:
            provider = turn.drill.provider_for(tier.info.name, provider)
        stream = provider.stream(tier_request, tier.config.model)
        hard = min(turn.deadline, attempt.start + tier.config.timeouts.total_s)
        watchdog = Watchdog(turn.loop)
        return Try(
            tier, index, attempt, stream, watchdog, hard, probe, self._next_after(index, turn)
        )

    def _race(
        self, slow: Try, turn: Turn, control: TurnControl, request: ChatRequest, retried: bool
    ) -> Race | None:
        """A race for this try's first text, if its tier hedges and a hedge could start before
        the try's first-token limit; None to read it as any other try."""
        after = slow.tier.config.hedge_after_s
        if after is None:
            return None
        if not retried:
            self._hedges.count_turn(slow.tier.info.name)
        start = slow.attempt.start
        hedge_at = start + after
        first_token_limit = start + slow.attempt.config.timeouts.first_token_s
        if slow.next_tier is None or hedge_at >= min(slow.hard, first_token_limit):
            return None

        async def start_hedge() -> Try | None:
            return await self._start_hedge(slow, turn, request)

        return Race(
            slow,
            turn,
            hedge_at,
            start_hedge,
            abandoned=control.abandoned,
            ends_turn=lambda error: error.kind in _FINAL,
            report=lambda record, probe: self._report(turn, record, probe),
            report_later=lambda record, probe: self._report_later(turn, record, probe),
        )

    async def _start_hedge(self, slow: Try, turn: Turn, request: ChatRequest) -> Try | None:
        """``slow``'s hedge: the next tier worth asking whose breaker lets it through, if the
        budget allows one; None otherwise."""
        name = slow.tier.info.name
        if turn.remaining() <= _MIN_ATTEMPT_S or not self._hedges.allows(name):
            logger.info("tier %s is slow but not hedged (budget or deadline)", name)
            return None
        for index in range(slow.index + 1, len(self._tiers)):
            if not self._admits(index, turn):
                continue
            probe = False
            if turn.breakers is not None:
                verdict = (await turn.breakers.admit(self._tiers[index].info.name)).verdict
                if verdict is Verdict.SKIP:
                    continue  # a hedge respects an open breaker
                probe = verdict is not Verdict.PASS
            self._hedges.spend(name)
            hedge = self._begin(index, turn, request, probe)
            slow.attempt.hedge, hedge.attempt.hedge = HedgeRole.HEDGED, HedgeRole.HEDGE
            logger.info("tier %s is slow: hedging with %s", name, hedge.tier.info.name)
            return hedge
        return None

    async def _report(self, turn: Turn, record: AttemptRecord, probe: bool) -> None:
        if turn.breakers is not None:
            await turn.breakers.report(record.tier.name, record, probe=probe)

    def _report_later(self, turn: Turn, record: AttemptRecord, probe: bool) -> None:
        if turn.breakers is None:
            return
        task = asyncio.get_running_loop().create_task(self._report(turn, record, probe))
        self._reports.add(task)
        task.add_done_callback(self._reports.discard)

    async def _last_resort(self, index: int, turn: Turn) -> bool:
        """This tier's breaker is open: try it anyway if every tier still worth trying is open
        too and this one opened first."""
        assert turn.breakers is not None
        if turn.last_resort_used or turn.limited:
            return False
        opened: list[tuple[float, int]] = []
        for later in range(index, len(self._tiers)):
            tier = self._tiers[later]
            if not turn.admits(tier.config):
                continue
            passes, since = await turn.breakers.passes(tier.info.name)
            if passes and later != index:
                return False  # a later tier will answer
            opened.append((since if since is not None else float("inf"), later))
        if not opened or min(opened)[1] != index:
            return False
        turn.last_resort_used = True
        return True

    def _next_after(self, index: int, turn: Turn) -> TierInfo | None:
        """The tier the chain would try after this one, as things stand."""
        for tier in self._tiers[index + 1 :]:
            if turn.admits(tier.config):
                return tier.info
        return None

    def _retry_delay(self, error: ProviderError) -> float | None:
        """Seconds to wait before the one same-tier retry, or None to move on at once."""
        kind, after = error.kind, error.retry_after
        if kind not in _TRANSIENT and not (kind is ErrorKind.RATE_LIMITED and after is not None):
            return None
        if after is not None and after > self._retry_after_cap_s:
            return None
        return (after or 0.0) + self._rng.uniform(0.0, self._backoff_s)


def _started(run: Try, *, restart: bool = False, retry: bool = False) -> TierStarted:
    return TierStarted(
        run.tier.info,
        run.number,
        restart=restart,
        retry=retry,
        started_at=run.attempt.started_at,
        next=run.next_tier,
    )
