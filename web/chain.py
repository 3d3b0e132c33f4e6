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
- The stream ends with exactly one Completed or Exhausted.
- Every try ends in exactly one AttemptRecord, handed to ``on_attempt`` when it ends: "ok",
  "failed", "abandoned", "skipped" (breaker open), or "cancelled" when the consumer goes away (``aclose()`` or task cancellation, which
  also closes the upstream HTTP response). A callback and not an event, because it is the one
  channel that also reaches a consumer that is closing the stream: a generator being closed
  cannot yield.

What users read about all this (the degraded reason, the final messages) is in :mod:`web.wording`;
how tiers are built from settings is in :mod:`web.tiers`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import replace

from web.attempts import RunningAttempt
from web.breaker import Verdict
from web.breaker_store import Admission, Breakers
from web.events import AttemptRecord, ChainEvent, Completed, Exhausted, TierInfo, TierStarted
from web.providers.base import ChatRequest, ErrorKind, ProviderError, Usage
from web.settings import Settings, TierConfig
from web.status import AttemptOutcome
from web.tiers import Tier, build_tiers
from web.watchdog import Expired, Watchdog
from web.wording import (
    circuit_open_note,
    degraded_reason,
    exhausted_message,
    final_message,
    too_long_message,
)

__all__ = ["AttemptSink", "Chain", "TurnControl"]

logger = logging.getLogger(__name__)

AttemptSink = Callable[[AttemptRecord], None]

_MIN_ATTEMPT_S = 0.01
"""Do not start an attempt with less time than this left before the turn deadline."""

_TRANSIENT = frozenset({ErrorKind.OVERLOADED, ErrorKind.SERVER_ERROR, ErrorKind.CONNECTION})
_FINAL = frozenset({ErrorKind.BAD_REQUEST, ErrorKind.NOT_FOUND, ErrorKind.CONTENT_POLICY})


class TurnControl:
    """What a user can do to a running turn besides Stop: not wait any longer for the try in
    progress, before it has sent text, when there is a tier after it."""

    def __init__(self) -> None:
        self._attempt: RunningAttempt | None = None
        self._watchdog: Watchdog | None = None
        self._next: TierInfo | None = None
        self._abandoned: set[int] = set()

    def skip(self, attempt: int) -> TierInfo | None:
        """Abandon try number ``attempt`` if it is still the one waited for; returns the tier
        that is asked next, or None when there is nothing to skip (it already answered, it is
        over, or it is the last tier)."""
        running, watchdog, next_tier = self._attempt, self._watchdog, self._next
        if running is None or watchdog is None or next_tier is None:
            return None
        if running.number != attempt or running.after_text:
            return None
        self._abandoned.add(attempt)
        watchdog.expire_now()
        return next_tier

    def abandoned(self, attempt: int) -> bool:
        return attempt in self._abandoned

    def _begin(
        self, attempt: RunningAttempt, watchdog: Watchdog, next_tier: TierInfo | None
    ) -> None:
        self._attempt, self._watchdog, self._next = attempt, watchdog, next_tier

    def _end(self) -> None:
        self._attempt = self._watchdog = self._next = None


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
    ) -> None:
        if not tiers:
            raise ValueError("a chain needs at least one tier")
        self._tiers = tuple(tiers)
        self._breakers = breakers
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
    ) -> AsyncGenerator[ChainEvent, None]:
        """One turn. Close it with ``aclose()`` (or ``contextlib.aclosing``) if you stop early."""
        turn = _Turn(asyncio.get_running_loop(), self._deadline_s, on_attempt)
        control = control or TurnControl()
        restart = False
        for index, tier in enumerate(self._tiers):
            if not turn.admits(tier.config):
                continue
            tier_request = replace(request, max_tokens=tier.config.max_output_tokens)
            retried = False
            while turn.remaining() > _MIN_ATTEMPT_S:
                probe = False
                if self._breakers is not None:
                    admission = await self._breakers.admit(tier.info.name)
                    if admission.verdict is Verdict.SKIP and not await self._last_resort(
                        index, turn
                    ):
                        if not retried:  # a retry of a try that just opened it: that try says why
                            turn.skipped(tier, admission)
                        break
                    probe = admission.verdict is not Verdict.PASS
                attempt = turn.begin(tier)
                # The attempt's stream is driven inline, not in a helper generator: every layer
                # of async generator costs each token a few microseconds. Creating it sends nothing.
                stream = tier.provider.stream(tier_request, tier.config.model)
                timeouts = tier.config.timeouts
                hard = min(turn.deadline, attempt.start + timeouts.total_s)
                watchdog = Watchdog(turn.loop)
                next_tier = self._next_after(index, turn)
                control._begin(attempt, watchdog, next_tier)
                soft = 0.0
                try:
                    # Inside the try: a consumer that goes away right here still gets the
                    # attempt's "cancelled" record.
                    yield TierStarted(
                        tier.info,
                        attempt.number,
                        restart=restart,
                        retry=retried,
                        started_at=attempt.started_at,
                        next=next_tier,
                    )
                    restart = False
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
                    attempt.error = exc
                except Expired:
                    if not control.abandoned(attempt.number):
                        attempt.error = _timeout_error(attempt, turn, soft, hard)
                except Exception as exc:  # a provider bug must not end the turn without an event
                    logger.exception("provider %s raised a non-ProviderError", tier.info.name)
                    attempt.error = ProviderError(
                        ErrorKind.SERVER_ERROR, f"unexpected {type(exc).__name__}: {exc}"
                    )
                except BaseException:  # the consumer went away: aclose() or cancellation
                    cancelled = turn.end(attempt, AttemptOutcome.CANCELLED)
                    if probe:  # free the probe now, not when it times out (nothing to await)
                        self._report_later(cancelled, probe)
                    raise
                finally:
                    control._end()
                    watchdog.close()
                    aclose = getattr(stream, "aclose", None)
                    if aclose is not None:
                        await aclose()

                if control.abandoned(attempt.number):
                    await self._report(turn.abandoned(attempt, next_tier), probe)
                    break
                error = attempt.error
                if error is None:
                    completed = turn.completed(attempt)
                    await self._report(turn.records[-1], probe)
                    yield completed
                    return
                await self._report(turn.failed(attempt, error), probe)
                restart = attempt.after_text
                if error.kind in _FINAL:
                    yield turn.exhausted(final_message(tier.config, error), error.kind)
                    return
                waited = turn.loop.time() - attempt.start
                # One retry, and only for a try that failed fast: one that already kept the
                # user waiting longer than a retry would (a connection closed after seconds of
                # silence) moves on.
                fresh = not (retried or attempt.after_text or waited > self._retry_after_cap_s)
                delay = self._retry_delay(error) if fresh else None
                if delay is None or delay >= turn.remaining():
                    turn.exclude_after(tier.config, error)
                    break
                retried = True
                await asyncio.sleep(delay)
            if turn.remaining() <= _MIN_ATTEMPT_S:
                break
        yield turn.exhausted_summary(out_of_time=turn.remaining() <= _MIN_ATTEMPT_S)

    async def _report(self, record: AttemptRecord, probe: bool) -> None:
        if self._breakers is not None:
            await self._breakers.report(record.tier.name, record, probe=probe)

    def _report_later(self, record: AttemptRecord, probe: bool) -> None:
        task = asyncio.get_running_loop().create_task(self._report(record, probe))
        self._reports.add(task)
        task.add_done_callback(self._reports.discard)

    async def _last_resort(self, index: int, turn: _Turn) -> bool:
        """This tier's breaker is open: try it anyway if every tier still worth trying is open
        too and this one opened first."""
        assert self._breakers is not None
        if turn.last_resort_used:
            return False
        opened: list[tuple[float, int]] = []
        for later in range(index, len(self._tiers)):
            tier = self._tiers[later]
            if not turn.admits(tier.config):
                continue
            passes, since = await self._breakers.passes(tier.info.name)
            if passes and later != index:
                return False  # a later tier will answer
            opened.append((since if since is not None else float("inf"), later))
        if not opened or min(opened)[1] != index:
            return False
        turn.last_resort_used = True
        return True

    def _next_after(self, index: int, turn: _Turn) -> TierInfo | None:
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


def _timeout_error(attempt: RunningAttempt, turn: _Turn, soft: float, hard: float) -> ProviderError:
    """Say which limit fired: first token or idle (soft), or the tier's total or the turn's."""
    timeouts = attempt.config.timeouts
    if soft <= hard and attempt.parts:
        message = f"no text for {timeouts.idle_s:g} s (idle timeout)"
    elif soft <= hard:
        message = f"no first token within {timeouts.first_token_s:g} s"
    elif hard >= turn.deadline:
        message = f"the turn deadline ({turn.deadline_s:g} s) passed"
    else:
        message = f"the tier's total time limit ({timeouts.total_s:g} s) passed"
    return ProviderError(ErrorKind.TIMEOUT, message)


class _Turn:
    """One run's clock, its attempt records, and which tiers are still worth trying."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, deadline_s: float, on_attempt: AttemptSink | None
    ) -> None:
        self.loop = loop
        self.start = loop.time()
        self.deadline_s = deadline_s
        self.deadline = self.start + deadline_s
        self.records: list[AttemptRecord] = []
        self._on_attempt = on_attempt
        self._rejected_keys: set[str] = set()
        self._window_above: int | None = None
        self._last_error: ProviderError | None = None
        self.last_resort_used = False
        """Every tier was open and the one that opened first got a try (once per turn)."""

    def remaining(self) -> float:
        return self.deadline - self.loop.time()

    def admits(self, config: TierConfig) -> bool:
        if config.api_key_env in self._rejected_keys:
            return False
        if self._window_above is None:
            return True
        return config.context_window is not None and config.context_window > self._window_above

    def exclude_after(self, config: TierConfig, error: ProviderError) -> None:
        if error.kind is ErrorKind.AUTH:
            self._rejected_keys.add(config.api_key_env)
        elif error.kind is ErrorKind.CONTEXT_TOO_LONG:
            window = config.context_window or 0
            self._window_above = max(self._window_above or 0, window)

    def begin(self, tier: Tier) -> RunningAttempt:
        return RunningAttempt(tier.info, tier.config, len(self.records) + 1, self.loop)

    def end(
        self, attempt: RunningAttempt, outcome: AttemptOutcome, note: str | None = None
    ) -> AttemptRecord:
        record = attempt.record(outcome, note)
        self.records.append(record)
        if self._on_attempt is not None:
            self._on_attempt(record)
        return record

    def completed(self, attempt: RunningAttempt) -> Completed:
        self.end(attempt, AttemptOutcome.OK)
        usage = attempt.usage
        return Completed(
            tier=attempt.tier,
            text="".join(attempt.parts),
            input_tokens=usage.input_tokens if usage else None,
            output_tokens=usage.output_tokens if usage else None,
            ttft_s=None if attempt.first_at is None else attempt.first_at - self.start,
            total_s=self.loop.time() - self.start,
            degraded_reason=degraded_reason(attempt.tier, self.records),
            hit_length_limit=usage.hit_length_limit if usage else False,
            stop_reason=usage.stop_reason if usage else None,
        )

    def abandoned(self, attempt: RunningAttempt, next_tier: TierInfo | None) -> AttemptRecord:
        label = next_tier.label if next_tier else "the next model"
        logger.info("tier %s attempt %d abandoned by the user", attempt.tier.name, attempt.number)
        return self.end(
            attempt, AttemptOutcome.ABANDONED, f"the user chose to answer with {label} now"
        )

    def skipped(self, tier: Tier, admission: Admission) -> AttemptRecord:
        now = time.time()
        since = admission.opened_at if admission.opened_at is not None else now
        record = AttemptRecord(
            tier=tier.info,
            attempt=len(self.records) + 1,
            started_at=now,
            elapsed_s=0.0,
            ttft_s=None,
            outcome=AttemptOutcome.SKIPPED,
            error_kind=admission.reason,
            error_message=circuit_open_note(since, admission.reason),
            open_since=since,
        )
        self.records.append(record)
        if self._on_attempt is not None:
            self._on_attempt(record)
        return record

    def failed(self, attempt: RunningAttempt, error: ProviderError) -> AttemptRecord:
        self._last_error = error
        logger.info(
            "tier %s attempt %d failed: %s (status %s, request id %s, after text %s)",
            attempt.tier.name,
            attempt.number,
            error.message,
            error.status,
            error.request_id,
            attempt.after_text,
        )
        return self.end(attempt, AttemptOutcome.FAILED)

    def exhausted(self, message: str, kind: ErrorKind | None) -> Exhausted:
        return Exhausted(message=message, total_s=self.loop.time() - self.start, final_kind=kind)

    def exhausted_summary(self, *, out_of_time: bool) -> Exhausted:
        kind = self._last_error.kind if self._last_error else None
        if not out_of_time and kind is ErrorKind.CONTEXT_TOO_LONG:
            return self.exhausted(too_long_message(self._window_above), kind)
        message = exhausted_message(
            self.records,
            deadline_s=self.deadline_s,
            out_of_time=out_of_time,
            rejected_keys=self._rejected_keys,
        )
        return self.exhausted(message, kind)
