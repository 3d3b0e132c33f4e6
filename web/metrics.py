"""Prometheus metrics: the registry of one app, and the one place turns are counted.

Each app owns a :class:`Metrics`. The lifespan makes it; the runner and the deferral worker
report to it; /metrics (web.routes.metrics) renders it. Where its series live:

- by default, in a CollectorRegistry of the app's own (never the process-wide one: the tests make
  many apps in one process), and a scrape shows this process's figures;
- with PROMETHEUS_MULTIPROC_DIR (Settings.metrics_dir), in prometheus_client's files in that
  directory, which every process of the app writes: a scrape answered by any of them sums them
  all (web.metrics_shared says how, and what holds for several apps in one process).

Counted when a turn's outcome is recorded, once per turn, at its final status:

- the runner ends a turn (``TurnRunner._finish``): ok, degraded, failed, stopped, interrupted. A
  turn it hands to the deferral (queued) is not counted there: its end is the deferral's;
- the deferral worker lands a queued turn (degraded, on the deferral's tier) or fails it. A
  queued turn the user cancels ends in a route, not here, and is not counted (it is rare, and
  the queue gauges show it leave).

The live turns are counted as the runner starts and ends them (summed over live processes).

Sampled when /metrics is scraped, not per turn, by the process that answers, and added to the
text once (never summed over processes): each tier's breaker (shared by every process through
Redis when UNDERSTUDY_REDIS_URL is set; else this process's), the queue (from the database), and
when a drill last passed (from the database).

A drill's turns are counted in ``understudy_turns_total{drill="true"}`` and nowhere else: its
faults are made on purpose, so the attempts and the latency histograms stay what users got (a
drill of a hanging primary must not look like a slow primary). An instance-wide drill's faults hit
users' turns too, and those are counted as what they are: users' turns.

Every label is a closed set: tier names from the chain file, statuses, outcomes, error kinds,
"true"/"false". None carries a user, a conversation, a turn or a prompt.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from web.breaker import BreakerState
from web.events import AttemptRecord, TierInfo
from web.metrics_shared import SharedSeries, files_collector
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

    breakers: Sequence[tuple[str, BreakerState]]
    """(tier name, its breaker's state as shown), in chain order."""
    queue_depth: int
    queue_oldest_age_s: float
    """0 when the queue is empty."""
    drill_last_pass: datetime | None


def _flag(drill: bool) -> str:
    return "true" if drill else "false"


class Series:
    """The series written as turns run, into ``registry``, or (None) only into the files of
    multiprocess mode."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.turns = Counter(
            "understudy_turns_total",
            "Turns ended, by the tier that answered (none: no tier did), the final status, and "
            'whether it was a drill\'s turn (alerts leave drill="true" out).',
            ("tier", "status", "drill"),
            registry=registry,
        )
        self.attempts = Counter(
            "understudy_attempts_total",
            "Tries of a tier within users' turns, by outcome and error kind (none: it did not "
            "fail).",
            ("tier", "outcome", "error_kind"),
            registry=registry,
        )
        self.ttft = Histogram(
            "understudy_time_to_first_token_seconds",
            "From the start of a user's turn to the first token of the reply kept, by the tier "
            "that wrote it.",
            ("tier",),
            buckets=TTFT_BUCKETS_S,
            registry=registry,
        )
        self.duration = Histogram(
            "understudy_turn_duration_seconds",
            "Users' turns the runner ended, from start to end (queued turns not included).",
            buckets=DURATION_BUCKETS_S,
            registry=registry,
        )
        self.live = Gauge(
            "understudy_live_turns",
            "Turns running now (in multiprocess mode: in all of the app's live processes).",
            registry=registry,
            multiprocess_mode="livesum",
        )


PROCESS_SERIES: SharedSeries[Series] = SharedSeries(lambda: Series(None))
"""This process's series in multiprocess mode (web.metrics_shared: why one per process)."""


class _Sampled(Collector):
    """The figures taken at a scrape, by the process that answers it."""

    def __init__(self, sample: Sample, tiers: Sequence[str]) -> None:
        self._sample = sample
        self._tiers = tiers

    def collect(self) -> Iterator[Metric]:
        sample = self._sample
        breaker = GaugeMetricFamily(
            "understudy_breaker_state",
            "Each tier's circuit breaker: 0 closed, 1 half-open, 2 open.",
            labels=("tier",),
        )
        states = {tier: BREAKER_VALUES[state] for tier, state in sample.breakers}
        for tier in dict.fromkeys([*self._tiers, *states]):
            breaker.add_metric((tier,), states.get(tier, 0))
        yield breaker
        yield GaugeMetricFamily(
            "understudy_queue_depth",
            "Deferred jobs still open (waiting, submitted or cancelling), in the database.",
            value=sample.queue_depth,
        )
        yield GaugeMetricFamily(
            "understudy_queue_oldest_age_seconds",
            "How long the oldest open deferred job has waited (0: the queue is empty).",
            value=sample.queue_oldest_age_s,
        )
        last = sample.drill_last_pass
        yield GaugeMetricFamily(
            "understudy_drill_last_pass_timestamp_seconds",
            "When the last drill that passed ended, Unix time (0: no drill has passed).",
            value=last.timestamp() if last is not None else 0,
        )


class _Scrape(Collector):
    def __init__(self, *sources: Collector) -> None:
        self._sources = sources

    def collect(self) -> Iterator[Metric]:
        for source in self._sources:
            yield from source.collect()


class Metrics:
    def __init__(self, tiers: Iterable[TierInfo] = (), *, shared_dir: Path | None = None) -> None:
        """``tiers``: the chain's, whose series are made at once (at zero), so a rule that divides
        or compares them finds them before the first turn. ``shared_dir``: multiprocess mode's
        directory (Settings.metrics_dir); call :meth:`close` when the app stops."""
        self._shared_dir = shared_dir
        self._closed = False
        if shared_dir is None:
            self.registry: CollectorRegistry | None = CollectorRegistry(auto_describe=True)
            series = Series(self.registry)
        else:
            self.registry = None
            series = PROCESS_SERIES.acquire(shared_dir)
        self._turns = series.turns
        self._attempts = series.attempts
        self._ttft = series.ttft
        self._duration = series.duration
        self._live = series.live
        self._tiers: list[str] = []
        for tier in tiers:
            self._tiers.append(tier.name)
            self._ttft.labels(tier.name)
            status = TurnStatus.OK if tier.is_primary else TurnStatus.DEGRADED
            self._turns.labels(tier.name, status.value, _flag(False))
        self._turns.labels(NO_TIER, TurnStatus.FAILED.value, _flag(False))

    @property
    def shared_dir(self) -> Path | None:
        return self._shared_dir

    def close(self) -> None:
        """The app stops: in multiprocess mode, this process's live turns stop counting."""
        if self._shared_dir is not None and not self._closed:
            self._closed = True
            PROCESS_SERIES.release(self._shared_dir)

    # --- counted as turns start and end ------------------------------------------------------
    def turn_started(self) -> None:
        """The runner took a turn on (it is live until :meth:`turn_left`)."""
        self._live.inc()

    def turn_left(self) -> None:
        """A turn the runner took on is no longer live in it."""
        self._live.dec()

    # --- counted when a turn ends, at its final status ----------------------------------------
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
        """The text exposition: the series written as turns ran (every process's, summed, in
        multiprocess mode), then ``sample``'s figures, once."""
        written: Collector
        if self.registry is not None:
            written = self.registry
        else:
            assert self._shared_dir is not None
            written = files_collector(self._shared_dir)
        return generate_latest(_Scrape(written, _Sampled(sample, self._tiers)))
