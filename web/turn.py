"""One run of the chain: its clock, its attempt records, and which tiers are still worth trying.

The chain (:mod:`web.chain`) and the hedge (:mod:`web.hedge`) decide what happens; this module
keeps what a turn has learnt so far and builds every record and final event the same way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from web.attempts import RunningAttempt
from web.breaker_store import Admission
from web.events import AttemptRecord, Completed, Exhausted, TierInfo
from web.providers.base import ErrorKind, ProviderError
from web.settings import TierConfig
from web.status import AttemptOutcome
from web.tiers import Tier
from web.wording import (
    circuit_open_note,
    degraded_reason,
    exhausted_message,
    too_long_message,
)

if TYPE_CHECKING:
    from web.breaker_store import Breakers
    from web.drill_faults import DrillFaults

__all__ = ["AttemptSink", "Turn"]

logger = logging.getLogger(__name__)

AttemptSink = Callable[[AttemptRecord], None]


class Turn:
    """One run's clock, its attempt records, and which tiers are still worth trying."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        deadline_s: float,
        on_attempt: AttemptSink | None,
        *,
        only: frozenset[str] | None = None,
    ) -> None:
        self.loop = loop
        self.start = loop.time()
        self.deadline_s = deadline_s
        self.deadline = self.start + deadline_s
        self.records: list[AttemptRecord] = []
        self._on_attempt = on_attempt
        self._numbers = 0
        self._rejected_keys: set[str] = set()
        self._window_above: int | None = None
        self._spent: set[str] = set()
        self._last_error: ProviderError | None = None
        self.last_resort_used = False
        """Every tier was open and the one that opened first got a try (once per turn)."""
        self.drill: DrillFaults | None = None
        """A running drill's faults, in front of the tiers' providers (web.drill_faults)."""
        self.breakers: Breakers | None = None
        """The breakers this turn asks and tells: None for a drill of its own turns."""
        self._only = only
        """The names of the tiers this turn may use (None: every tier of the chain)."""

    @property
    def limited(self) -> bool:
        """The turn may use some tiers only (an upgrade: the primary alone)."""
        return self._only is not None

    def remaining(self) -> float:
        return self.deadline - self.loop.time()

    def admits(self, config: TierConfig) -> bool:
        if self._only is not None and config.name not in self._only:
            return False
        if config.api_key_env in self._rejected_keys or config.name in self._spent:
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

    def spend(self, config: TierConfig) -> None:
        """The tier has had its try in this turn and failed (a hedge that failed before it
        won): do not ask it again."""
        self._spent.add(config.name)

    def _number(self) -> int:
        # Not len(records) + 1: with a hedge, two tries run at once and end in any order.
        self._numbers += 1
        return self._numbers

    def begin(self, tier: Tier) -> RunningAttempt:
        return RunningAttempt(tier.info, tier.config, self._number(), self.loop)

    def end(
        self, attempt: RunningAttempt, outcome: AttemptOutcome, note: str | None = None
    ) -> AttemptRecord:
        return self.add(attempt.record(outcome, note))

    def add(self, record: AttemptRecord) -> AttemptRecord:
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
        return self.add(self.abandoned_record(attempt, next_tier))

    def abandoned_record(
        self, attempt: RunningAttempt, next_tier: TierInfo | None
    ) -> AttemptRecord:
        label = next_tier.label if next_tier else "the next model"
        logger.info("tier %s attempt %d abandoned by the user", attempt.tier.name, attempt.number)
        return attempt.record(
            AttemptOutcome.ABANDONED, f"the user chose to answer with {label} now"
        )

    def skipped(self, tier: Tier, admission: Admission) -> AttemptRecord:
        now = time.time()
        since = admission.opened_at if admission.opened_at is not None else now
        return self.add(
            AttemptRecord(
                tier=tier.info,
                attempt=self._number(),
                started_at=now,
                elapsed_s=0.0,
                ttft_s=None,
                outcome=AttemptOutcome.SKIPPED,
                error_kind=admission.reason,
                error_message=circuit_open_note(since, admission.reason),
                open_since=since,
            )
        )

    def failed(self, attempt: RunningAttempt, error: ProviderError) -> AttemptRecord:
        return self.add(self.failed_record(attempt, error))

    def failed_record(self, attempt: RunningAttempt, error: ProviderError) -> AttemptRecord:
        """The record of a failed try, not yet added (the hedge hands some over later)."""
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
        attempt.error = error
        return attempt.record(AttemptOutcome.FAILED)

    def timeout_error(self, attempt: RunningAttempt, soft: float, hard: float) -> ProviderError:
        """Say which limit fired: first token or idle (soft), or the tier's total or the turn's."""
        timeouts = attempt.config.timeouts
        if soft <= hard and attempt.parts:
            message = f"no text for {timeouts.idle_s:g} s (idle timeout)"
        elif soft <= hard:
            message = f"no first token within {timeouts.first_token_s:g} s"
        elif hard >= self.deadline:
            message = f"the turn deadline ({self.deadline_s:g} s) passed"
        else:
            message = f"the tier's total time limit ({timeouts.total_s:g} s) passed"
        return ProviderError(ErrorKind.TIMEOUT, message)

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
