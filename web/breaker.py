"""A circuit breaker per tier, so that the chain stops rediscovering an outage on every turn.

    closed     every try goes through; each try's result enters a sliding time window
    open       tries are skipped at once (recorded as "skipped", with since when and why)
    half_open  after the open time, exactly one live try probes the tier while the others skip it:
               success closes the breaker, failure opens it again for twice as long

What counts (``classify``), from an AttemptRecord:

- a failure: rate limited, overloaded, 5xx, connection, timeout (a first token slower than the
  tier's first-token timeout included), truncated, malformed. The breaker opens when, within
  ``window_s``, at least ``min_calls`` tries were made and at least ``failure_rate`` of them failed.
- a trip at once: quota exhausted, an auth failure, and a rate limit whose retry-after is longer
  than the chain's retry cap (open for that long);
- nothing: bad requests, unknown models, context too long, content-policy refusals (they say
  nothing about the tier's health), and tries the user abandoned or the consumer cancelled.

The state of one tier is a small JSON-ready value and every transition is a pure function of it and
the time (:func:`decide`, :func:`record`), so the in-process store and the Redis store
(:mod:`web.breaker_store`) apply exactly the same rules; times are Unix times, because the state
is shared between processes and the page says "since 10:42".

Hand-written rather than pybreaker, purgatory or aiobreaker: they count consecutive failures,
while chat traffic needs a failure *rate* over a time window with a minimum number of calls, a
retry-after as the open time, a single reserved half-open probe, and the "skipped since when and
why" that the page shows; none of them has those, and their Redis storages keep only a counter.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from web.providers.base import ErrorKind
from web.status import AttemptOutcome

if TYPE_CHECKING:  # web.events needs web.settings, which needs BreakerConfig from here
    from web.events import AttemptRecord


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Verdict(StrEnum):
    PASS = "pass"
    PROBE = "probe"
    """The one try allowed through a half-open breaker."""
    SKIP = "skip"


class Effect(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    TRIP = "trip"
    NEUTRAL = "neutral"


@dataclass(frozen=True)
class BreakerConfig:
    window_s: float = 60.0
    min_calls: int = 5
    failure_rate: float = 0.5
    open_s: float = 30.0
    max_open_s: float = 300.0
    probe_timeout_s: float = 120.0
    """A probe that reports nothing for this long (its process died) frees the slot."""


_FAILURES = frozenset(
    {
        ErrorKind.RATE_LIMITED,
        ErrorKind.OVERLOADED,
        ErrorKind.SERVER_ERROR,
        ErrorKind.CONNECTION,
        ErrorKind.TIMEOUT,
        ErrorKind.TRUNCATED,
        ErrorKind.MALFORMED,
    }
)
_TRIPS = frozenset({ErrorKind.QUOTA_EXHAUSTED, ErrorKind.AUTH})


def classify(record: AttemptRecord, retry_after_cap_s: float) -> Effect:
    if record.outcome is AttemptOutcome.OK:
        return Effect.SUCCESS
    if record.outcome is not AttemptOutcome.FAILED or record.error_kind is None:
        return Effect.NEUTRAL
    kind = record.error_kind
    if kind in _TRIPS:
        return Effect.TRIP
    if kind is ErrorKind.RATE_LIMITED and (record.retry_after or 0.0) > retry_after_cap_s:
        return Effect.TRIP
    return Effect.FAILURE if kind in _FAILURES else Effect.NEUTRAL


@dataclass
class TierBreaker:
    """One tier's breaker, as stored (in this process or in Redis)."""

    state: BreakerState = BreakerState.CLOSED
    calls: list[tuple[float, bool]] = field(default_factory=list)
    """(when, failed) of the tries in the window, oldest first (closed state only)."""
    opened_at: float | None = None
    """When this outage began (kept through re-opens, cleared when it closes)."""
    until: float = 0.0
    """Open until then; half-open after."""
    reason: ErrorKind | None = None
    """The failure that opened it (the last one, after a re-open)."""
    reopens: int = 0
    last_failure: ErrorKind | None = None
    """The kind of the newest failure in the window (what opened it, if a success tipped it)."""
    probe_until: float = 0.0
    """A probe is out until then (half-open)."""

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["state"] = self.state.value
        data["reason"] = self.reason.value if self.reason else None
        data["last_failure"] = self.last_failure.value if self.last_failure else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TierBreaker:
        return cls(
            state=BreakerState(data["state"]),
            calls=[(float(t), bool(f)) for t, f in data.get("calls", [])],
            opened_at=data.get("opened_at"),
            until=float(data.get("until", 0.0)),
            reason=ErrorKind(data["reason"]) if data.get("reason") else None,
            reopens=int(data.get("reopens", 0)),
            last_failure=ErrorKind(data["last_failure"]) if data.get("last_failure") else None,
            probe_until=float(data.get("probe_until", 0.0)),
        )

    def shown_state(self, now: float) -> BreakerState:
        """Open past its time reads as half-open: the next try will probe."""
        if self.state is BreakerState.OPEN and now >= self.until:
            return BreakerState.HALF_OPEN
        return self.state


def decide(breaker: TierBreaker, now: float, config: BreakerConfig) -> Verdict:
    """May a try go through now? A PROBE verdict reserves the probe: call it once per try.
    Mutates ``breaker``."""
    if breaker.state is BreakerState.CLOSED:
        return Verdict.PASS
    if breaker.state is BreakerState.OPEN:
        if now < breaker.until:
            return Verdict.SKIP
        breaker.state = BreakerState.HALF_OPEN
        breaker.probe_until = 0.0
    if now < breaker.probe_until:
        return Verdict.SKIP  # another try is probing
    breaker.probe_until = now + config.probe_timeout_s
    return Verdict.PROBE


def would_pass(breaker: TierBreaker, now: float) -> bool:
    """:func:`decide` without reserving anything: would a try go through now?"""
    if breaker.state is BreakerState.CLOSED:
        return True
    if breaker.state is BreakerState.OPEN:
        return now >= breaker.until
    return now >= breaker.probe_until


def record(
    breaker: TierBreaker,
    now: float,
    config: BreakerConfig,
    effect: Effect,
    kind: ErrorKind | None,
    retry_after: float | None,
    *,
    probe: bool,
) -> None:
    """A try's result. ``probe``: it was the half-open probe (or the last-resort try of an open
    breaker). Mutates ``breaker``."""
    if breaker.state is not BreakerState.CLOSED:
        if not probe:
            return  # a try let through before it opened, ending late: the probe decides
        if effect is Effect.SUCCESS:
            _close(breaker)
        elif effect in (Effect.FAILURE, Effect.TRIP):
            breaker.reopens += 1
            _open(breaker, now, config, kind, retry_after)
        else:
            breaker.probe_until = 0.0  # abandoned or neutral: let the next try probe
        return
    if effect is Effect.TRIP:
        _open(breaker, now, config, kind, retry_after)
        return
    if effect is Effect.NEUTRAL:
        return
    horizon = now - config.window_s
    calls = [c for c in breaker.calls if c[0] > horizon]
    calls.append((now, effect is Effect.FAILURE))
    breaker.calls = calls
    if effect is Effect.FAILURE:
        breaker.last_failure = kind
    failures = sum(1 for _, failed in calls if failed)
    if len(calls) >= config.min_calls and failures >= config.failure_rate * len(calls):
        _open(breaker, now, config, breaker.last_failure, retry_after)


def _open(
    breaker: TierBreaker,
    now: float,
    config: BreakerConfig,
    kind: ErrorKind | None,
    retry_after: float | None,
) -> None:
    open_s = min(config.open_s * 2**breaker.reopens, config.max_open_s)
    breaker.state = BreakerState.OPEN
    breaker.until = now + max(open_s, retry_after or 0.0)
    breaker.opened_at = breaker.opened_at if breaker.opened_at is not None else now
    breaker.reason = kind
    breaker.calls = []
    breaker.probe_until = 0.0


def _close(breaker: TierBreaker) -> None:
    breaker.state = BreakerState.CLOSED
    breaker.calls = []
    breaker.opened_at = None
    breaker.until = 0.0
    breaker.reason = None
    breaker.last_failure = None
    breaker.reopens = 0
    breaker.probe_until = 0.0
