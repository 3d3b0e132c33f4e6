"""Prometheus metrics: the registry of one app, and the one place turns are counted.

Each app owns a :class:`Metrics` (its own CollectorRegistry, never the process-wide one: the tests
make many apps in one process). The lifespan makes it; the runner and the deferral worker report
to it; /metrics (web.routes.metrics) renders it.

Counted when a turn's outcome is recorded, once per turn, at its final status:

- the runner ends a turn (``TurnRunner._finish``): ok, degraded, failed, stopped, interrupted. A
  turn it hands to the deferral (queued) is not counted there: its end is the deferral's;
- the deferral worker lands a queued turn (degraded, on the deferral's tier) or fails it. A
  queued turn the user cancels ends in a route, not here, and is not counted (it is rare, and
  the queue gauges show it leave).

Sampled when /metrics is scraped, not per turn: the live turns, each tier's breaker, the queue
(from the database), and when a drill last passed.

A drill's turns are counted in ``understudy_turns_total{drill="true"}`` and nowhere else: its
faults are made on purpose, so the attempts and the latency histograms stay what users got (a
drill of a hanging primary must not look like a slow primary). An instance-wide drill's faults hit
users' turns too, and those are counted as what they are: users' turns.

Every label is a closed set: tier names from the chain file, statuses, outcomes, error kinds,
"true"/"false". None carries a user, a conversation, a turn or a prompt.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from web.breaker import BreakerState
from web.events import AttemptRecord, TierInfo
from web.outcome import TurnOutcome
from web.status import TurnStatus

# The text format would otherwise add a `*_created` series beside every counter and histogram:
# noise for a scraper that computes rates (and this is the only registry format the app serves).
disable_created_metrics()  # type: ignore[no-untyped-call]

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""The Prometheus text format, which every Prometheus server reads."""

NO_TIER = "none"
"""The tier label of a turn no tier answered (it failed, or was stopped before any text)."""
NO_ERROR = "none"
"""The error_kind label of an attempt that did not fail."""

TTFT_BUCKETS_S = (0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 12.0, 20.0, 30.0)
"""First tokens of LLMs: a few hundred ms when all is well, seconds under load, 3 s the usual
SLA (the drill's default), 20 s the default first-token timeout, 30 s the worst worth telling
apart."""
DURATION_BUCKETS_S = (0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 180.0)
"""Whole turns: from a one-line answer to the 120 s turn deadline (a stuck one lands in +Inf)."""

BREAKER_VALUES = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}
"""understudy_breaker_state: 0 closed, 1 half-open, 2 open (alert on >= 1: not closed)."""


@dataclass(frozen=True)
class Sample:
    """What /metrics reads when it is scraped (web.routes.metrics gathers it)."""

    live_turns: int
    breakers: Sequence[tuple[str, BreakerState]]
    """(tier name, its breaker's state as shown), in chain order."""
    queue_depth: int
    queue_oldest_age_s: float
    """0 when the queue is empty."""
    drill_last_pass: datetime | None


def _flag(drill: bool) -> str:
    return "true" if drill else "false"


class Metrics:
    def __init__(self, tiers: Iterable[TierInfo] = ()) -> None:
        """``tiers``: the chain's, whose series are made at once (at zero), so a rule that divides
        or compares them finds them before the first turn."""
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self._turns = Counter(
            "understudy_turns_total",
            "Turns ended, by the tier that answered (none: no tier did), the final status, and "
            'whether it was a drill\'s turn (alerts leave drill="true" out).',
            ("tier", "status", "drill"),
            registry=registry,
        )
        self._attempts = Counter(
            "understudy_attempts_total",
            "Tries of a tier within users' turns, by outcome and error kind (none: it did not "
            "fail).",
            ("tier", "outcome", "error_kind"),
            registry=registry,
        )
        self._ttft = Histogram(
            "understudy_time_to_first_token_seconds",
            "From the start of a user's turn to the first token of the reply kept, by the tier "
            "that wrote it.",
            ("tier",),
            buckets=TTFT_BUCKETS_S,
            registry=registry,
        )
        self._duration = Histogram(
            "understudy_turn_duration_seconds",
            "Users' turns the runner ended, from start to end (queued turns not included).",
            buckets=DURATION_BUCKETS_S,
            registry=registry,
        )
        self._live = Gauge(
            "understudy_live_turns",
            "Turns this process is running now.",
            registry=registry,
        )
        self._breaker = Gauge(
            "understudy_breaker_state",
            "Each tier's circuit breaker: 0 closed, 1 half-open, 2 open.",
            ("tier",),
            registry=registry,
        )
        self._queue_depth = Gauge(
            "understudy_queue_depth",
            "Deferred jobs still open (waiting, submitted or cancelling), in the database.",
            registry=registry,
        )
        self._queue_age = Gauge(
            "understudy_queue_oldest_age_seconds",
            "How long the oldest open deferred job has waited (0: the queue is empty).",
            registry=registry,
        )
        self._drill_pass = Gauge(
            "understudy_drill_last_pass_timestamp_seconds",
            "When the last drill that passed ended, Unix time (0: no drill has passed).",
            registry=registry,
        )
        for tier in tiers:
            self._ttft.labels(tier.name)
            self._breaker.labels(tier.name).set(0)
            status = TurnStatus.OK if tier.is_primary else TurnStatus.DEGRADED
            self._turns.labels(tier.name, status.value, _flag(False))
        self._turns.labels(NO_TIER, TurnStatus.FAILED.value, _flag(False))

    # --- counted when a turn ends ------------------------------------------------------------
    def turn_ended(self, outcome: TurnOutcome, *, drill: bool) -> None:
        """The runner recorded ``outcome``. A queued turn is counted when its job ends."""
        if outcome.status is TurnStatus.QUEUED:
            self._attempted(outcome.attempts, drill=drill)
            return
        self._count(outcome.tier, outcome.status, drill=drill)
        self._attempted(outcome.attempts, drill=drill)
        if drill:
            return
        self._duration.observe(outcome.total_s)
        if outcome.tier is not None and outcome.ttft_s is not None and outcome.text:
            self._ttft.labels(outcome.tier.name).observe(outcome.ttft_s)

    def queued_turn_ended(self, tier: TierInfo | None, status: TurnStatus, *, drill: bool) -> None:
        """The deferral landed a queued turn's reply (``tier``: the deferral's) or failed it."""
        self._count(tier, status, drill=drill)

    def tried(self, attempts: Sequence[AttemptRecord], *, drill: bool) -> None:
        """Tries the deferral made for a queued turn (its retry backend's tries of the chain's
        tiers). A batch's submissions and polls are steps of a job, not tries: not counted."""
        self._attempted(attempts, drill=drill)

    def _count(self, tier: TierInfo | None, status: TurnStatus, *, drill: bool) -> None:
        name = tier.name if tier is not None else NO_TIER
        self._turns.labels(name, status.value, _flag(drill)).inc()

    def _attempted(self, attempts: Sequence[AttemptRecord], *, drill: bool) -> None:
        if drill:
            return
        for record in attempts:
            if record.attempt < 1:
                continue  # the deferral's own steps (submitted, pending, ...): attempt 0
            kind = record.error_kind.value if record.error_kind is not None else NO_ERROR
            self._attempts.labels(record.tier.name, record.outcome.value, kind).inc()

    # --- sampled when /metrics is scraped ----------------------------------------------------
    def render(self, sample: Sample) -> bytes:
        """The text exposition, with the gauges set from ``sample`` first."""
        self._live.set(sample.live_turns)
        for tier, state in sample.breakers:
            self._breaker.labels(tier).set(BREAKER_VALUES[state])
        self._queue_depth.set(sample.queue_depth)
        self._queue_age.set(sample.queue_oldest_age_s)
        last = sample.drill_last_pass
        self._drill_pass.set(last.timestamp() if last is not None else 0)
        return generate_latest(self.registry)
