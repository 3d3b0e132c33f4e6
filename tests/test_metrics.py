"""web.metrics: what a turn's end adds to the registry, and what a scrape renders."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client.parser import text_string_to_metric_families

from web.breaker import BreakerState
from web.events import Exhausted
from web.metrics import DURATION_BUCKETS_S, NO_ERROR, NO_TIER, TTFT_BUCKETS_S, Metrics, Sample
from web.outcome import CutBy, QueuedJob, crashed, cut_short, queued
from web.providers.base import ErrorKind
from web.status import TurnStatus

from support.outcomes import HAIKU, OPENAI, SONNET, answer, failed, ok

QUIET = Sample(breakers=(), queue_depth=0, queue_oldest_age_s=0.0, drill_last_pass=None)


def series(
    metrics: Metrics, sample: Sample = QUIET
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """(sample name, labels) -> value, from the rendered text (what Prometheus would read)."""
    text = metrics.render(sample).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(metrics: Metrics, name: str, sample: Sample = QUIET, **labels: str) -> float:
    return series(metrics, sample).get((name, frozenset(labels.items())), 0.0)


def test_a_turn_the_primary_answered_counts_once_with_its_attempt_and_latencies() -> None:
    metrics = Metrics()
    metrics.turn_ended(answer(SONNET, "Hi.", [ok(SONNET, 1)], ttft=0.4, total=2.2), drill=False)

    assert value(metrics, "understudy_turns_total", tier="sonnet", status="ok", drill="false") == 1
    assert (
        value(
            metrics, "understudy_attempts_total", tier="sonnet", outcome="ok", error_kind=NO_ERROR
        )
        == 1
    )
    ttft = "understudy_time_to_first_token_seconds"
    assert value(metrics, f"{ttft}_count", tier="sonnet") == 1
    assert value(metrics, f"{ttft}_sum", tier="sonnet") == 0.4
    assert value(metrics, f"{ttft}_bucket", tier="sonnet", le="0.25") == 0
    assert value(metrics, f"{ttft}_bucket", tier="sonnet", le="0.5") == 1
    assert value(metrics, "understudy_turn_duration_seconds_bucket", le="2.5") == 1
    assert value(metrics, "understudy_turn_duration_seconds_bucket", le="1.0") == 0


def test_a_degraded_turn_counts_on_the_tier_that_answered_and_the_failed_try_by_kind() -> None:
    metrics = Metrics()
    tries = [failed(SONNET, 1, ErrorKind.OVERLOADED, 529), ok(HAIKU, 2)]
    metrics.turn_ended(answer(HAIKU, "Hi.", tries), drill=False)

    counts = series(metrics)
    assert (
        counts[
            (
                "understudy_turns_total",
                frozenset({("tier", "haiku"), ("status", "degraded"), ("drill", "false")}),
            )
        ]
        == 1
    )
    assert (
        value(
            metrics,
            "understudy_attempts_total",
            tier="sonnet",
            outcome="failed",
            error_kind="overloaded",
        )
        == 1
    )
    assert (
        value(metrics, "understudy_attempts_total", tier="haiku", outcome="ok", error_kind=NO_ERROR)
        == 1
    )
    assert value(metrics, "understudy_time_to_first_token_seconds_count", tier="haiku") == 1
    assert value(metrics, "understudy_time_to_first_token_seconds_count", tier="sonnet") == 0


def test_turns_no_tier_answered_count_on_none_and_stopped_ones_on_their_tier() -> None:
    metrics = Metrics()
    metrics.turn_ended(
        crashed("", [failed(OPENAI, 1, ErrorKind.AUTH, 401)], started_at=0.0, total_s=1.0),
        drill=False,
    )
    metrics.turn_ended(
        cut_short(CutBy.STOP, "Half a", SONNET, [ok(SONNET, 1)], started_at=0.0, total_s=3.0),
        drill=False,
    )
    assert (
        value(metrics, "understudy_turns_total", tier=NO_TIER, status="failed", drill="false") == 1
    )
    assert (
        value(metrics, "understudy_turns_total", tier="sonnet", status="stopped", drill="false")
        == 1
    )
    assert value(metrics, "understudy_turn_duration_seconds_count") == 2


def test_a_queued_turn_counts_when_its_job_ends_not_when_the_runner_hands_it_over() -> None:
    metrics = Metrics()
    tries = [failed(SONNET, 1, ErrorKind.OVERLOADED, 529)]
    job = QueuedJob("anthropic_batch", "{}", ("Sonnet",), 3600.0)

    metrics.turn_ended(queued(Exhausted("All down."), job, tries, started_at=0.0), drill=False)
    assert (
        value(metrics, "understudy_turns_total", tier="sonnet", status="queued", drill="false") == 0
    )
    assert not any(
        name == "understudy_turns_total" and v for (name, _), v in series(metrics).items()
    )
    assert (
        value(
            metrics,
            "understudy_attempts_total",
            tier="sonnet",
            outcome="failed",
            error_kind="overloaded",
        )
        == 1
    )  # its tries were made now
    assert value(metrics, "understudy_turn_duration_seconds_count") == 0

    metrics.queued_turn_ended(SONNET, TurnStatus.DEGRADED, drill=False)
    assert (
        value(metrics, "understudy_turns_total", tier="sonnet", status="degraded", drill="false")
        == 1
    )


def test_a_drills_turn_counts_only_in_turns_total_with_drill_true() -> None:
    metrics = Metrics()
    tries = [failed(SONNET, 1, ErrorKind.AUTH, 401), ok(HAIKU, 2)]
    metrics.turn_ended(answer(HAIKU, "Hi.", tries, ttft=9.0, total=9.5), drill=True)
    metrics.tried(tries, drill=True)
    metrics.queued_turn_ended(None, TurnStatus.FAILED, drill=True)

    counted = {k: v for k, v in series(metrics).items() if v}
    assert counted == {
        (
            "understudy_turns_total",
            frozenset({("tier", "haiku"), ("status", "degraded"), ("drill", "true")}),
        ): 1,
        (
            "understudy_turns_total",
            frozenset({("tier", NO_TIER), ("status", "failed"), ("drill", "true")}),
        ): 1,
    }


def test_the_deferrals_own_steps_are_not_tries() -> None:
    metrics = Metrics()
    step = ok(HAIKU, 0)  # a batch submitted or polled: attempt 0
    metrics.tried([step, ok(HAIKU, 1)], drill=False)
    assert (
        value(metrics, "understudy_attempts_total", tier="haiku", outcome="ok", error_kind=NO_ERROR)
        == 1
    )


def test_the_histograms_have_the_buckets_sized_for_first_tokens_and_turns() -> None:
    metrics = Metrics([SONNET, HAIKU])
    text = metrics.render(QUIET).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    ttft = families["understudy_time_to_first_token_seconds"]
    assert ttft.type == "histogram"
    bounds = [
        s.labels["le"]
        for s in ttft.samples
        if s.name.endswith("_bucket") and s.labels["tier"] == "sonnet"
    ]
    assert bounds == [*(repr(float(b)) for b in TTFT_BUCKETS_S), "+Inf"]
    assert TTFT_BUCKETS_S[0] == 0.1 and TTFT_BUCKETS_S[-1] == 30.0 and 3.0 in TTFT_BUCKETS_S
    duration = families["understudy_turn_duration_seconds"]
    bounds = [s.labels["le"] for s in duration.samples if s.name.endswith("_bucket")]
    assert bounds == [*(repr(float(b)) for b in DURATION_BUCKETS_S), "+Inf"]


def test_the_chains_series_exist_at_zero_before_the_first_turn() -> None:
    metrics = Metrics([SONNET, HAIKU])
    counts = series(metrics)
    assert (
        counts[
            (
                "understudy_turns_total",
                frozenset({("tier", "sonnet"), ("status", "ok"), ("drill", "false")}),
            )
        ]
        == 0
    )
    assert (
        counts[
            (
                "understudy_turns_total",
                frozenset({("tier", "haiku"), ("status", "degraded"), ("drill", "false")}),
            )
        ]
        == 0
    )
    assert (
        counts[
            (
                "understudy_turns_total",
                frozenset({("tier", NO_TIER), ("status", "failed"), ("drill", "false")}),
            )
        ]
        == 0
    )
    assert counts[("understudy_breaker_state", frozenset({("tier", "haiku")}))] == 0
    assert (
        counts[("understudy_time_to_first_token_seconds_count", frozenset({("tier", "haiku")}))]
        == 0
    )


def test_a_scrape_sets_the_gauges_from_its_sample() -> None:
    metrics = Metrics([SONNET, HAIKU])
    passed = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
    sample = Sample(
        breakers=(("sonnet", BreakerState.OPEN), ("haiku", BreakerState.HALF_OPEN)),
        queue_depth=2,
        queue_oldest_age_s=42.5,
        drill_last_pass=passed,
    )
    assert value(metrics, "understudy_breaker_state", sample, tier="sonnet") == 2
    assert value(metrics, "understudy_breaker_state", sample, tier="haiku") == 1
    assert value(metrics, "understudy_queue_depth", sample) == 2
    assert value(metrics, "understudy_queue_oldest_age_seconds", sample) == 42.5
    assert (
        value(metrics, "understudy_drill_last_pass_timestamp_seconds", sample) == passed.timestamp()
    )
    assert value(metrics, "understudy_drill_last_pass_timestamp_seconds", QUIET) == 0
    closed = Sample((("sonnet", BreakerState.CLOSED),), 0, 0.0, None)
    assert value(metrics, "understudy_breaker_state", closed, tier="sonnet") == 0


def test_the_live_turns_are_those_the_runner_took_on_and_did_not_leave() -> None:
    metrics = Metrics([SONNET])
    for _ in range(3):
        metrics.turn_started()
    metrics.turn_left()
    assert value(metrics, "understudy_live_turns") == 2


def test_two_apps_in_one_process_count_apart() -> None:
    first, second = Metrics([SONNET]), Metrics([SONNET])
    first.turn_ended(answer(SONNET, "Hi.", [ok(SONNET, 1)]), drill=False)
    labels = {"tier": "sonnet", "status": "ok", "drill": "false"}
    assert value(first, "understudy_turns_total", **labels) == 1
    assert value(second, "understudy_turns_total", **labels) == 0
    assert "_created" not in first.render(QUIET).decode()
