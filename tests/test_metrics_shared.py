"""web.metrics_shared: in multiprocess mode a scrape answered by any process sums every process's
counters and live turns, and adds the figures it samples itself once."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import values

from web.breaker import BreakerState
from web.metrics import Metrics, Sample
from web.providers.base import ErrorKind
from web.settings import ConfigError, Settings

from support.multiproc import DEAD_PID, Processes, parse, processes  # noqa: F401  (the fixture)
from support.outcomes import HAIKU, SONNET, answer, failed, ok

PASSED = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
SAMPLE = Sample(
    breakers=(("sonnet", BreakerState.OPEN), ("haiku", BreakerState.CLOSED)),
    queue_depth=3,
    queue_oldest_age_s=12.5,
    drill_last_pass=PASSED,
)
QUIET = Sample(breakers=(), queue_depth=0, queue_oldest_age_s=0.0, drill_last_pass=None)
OK = (
    "understudy_turns_total",
    frozenset({("tier", "sonnet"), ("status", "ok"), ("drill", "false")}),
)
DEGRADED = (
    "understudy_turns_total",
    frozenset({("tier", "haiku"), ("status", "degraded"), ("drill", "false")}),
)
LIVE = ("understudy_live_turns", frozenset())
TTFT_COUNT = ("understudy_time_to_first_token_seconds_count", frozenset({("tier", "sonnet")}))


def two_ok_turns(metrics: Metrics) -> None:
    for _ in range(2):
        metrics.turn_ended(answer(SONNET, "Hi.", [ok(SONNET, 1)]), drill=False)


def test_a_scrape_on_either_process_sums_both_and_samples_once(
    processes: Processes,  # noqa: F811
) -> None:
    processes.another_running_process()
    first = Metrics([SONNET, HAIKU], shared_dir=processes.path)
    two_ok_turns(first)
    first.turn_started()
    processes.this_process()
    second = Metrics([SONNET, HAIKU], shared_dir=processes.path)
    second.turn_ended(answer(SONNET, "Hi.", [ok(SONNET, 1)]), drill=False)
    second.turn_ended(
        answer(HAIKU, "Hi.", [failed(SONNET, 1, ErrorKind.OVERLOADED, 529), ok(HAIKU, 2)]),
        drill=False,
    )
    for _ in range(2):
        second.turn_started()

    texts = [first.render(SAMPLE).decode(), second.render(SAMPLE).decode()]
    assert texts[0] == texts[1]
    figures = parse(texts[0])
    assert figures[OK] == 3
    assert figures[DEGRADED] == 1
    assert figures[TTFT_COUNT] == 3
    assert figures[("understudy_turn_duration_seconds_count", frozenset())] == 4
    assert figures[LIVE] == 3
    # Sampled by the process that answers, once: not 6, not 4 (2 + 2).
    assert figures[("understudy_queue_depth", frozenset())] == 3
    assert figures[("understudy_queue_oldest_age_seconds", frozenset())] == 12.5
    assert figures[("understudy_breaker_state", frozenset({("tier", "sonnet")}))] == 2
    assert figures[("understudy_breaker_state", frozenset({("tier", "haiku")}))] == 0
    drill = ("understudy_drill_last_pass_timestamp_seconds", frozenset())
    assert figures[drill] == PASSED.timestamp()
    assert "pid" not in texts[0]  # summed, not one series per process


def test_a_stopped_process_keeps_its_counts_but_not_its_live_turns(
    processes: Processes,  # noqa: F811
) -> None:
    processes.another_running_process()
    other = Metrics([SONNET], shared_dir=processes.path)
    two_ok_turns(other)
    other.turn_started()
    processes.this_process()
    stopping = Metrics([SONNET], shared_dir=processes.path)
    two_ok_turns(stopping)
    for _ in range(2):
        stopping.turn_started()
    assert parse(other.render(QUIET).decode())[LIVE] == 3

    stopping.close()
    assert f"gauge_livesum_{os.getpid()}.db" not in processes.files()
    assert f"counter_{os.getpid()}.db" in processes.files()
    figures = parse(other.render(QUIET).decode())
    assert figures[LIVE] == 1
    assert figures[OK] == 4


def test_the_live_turns_of_a_process_that_died_without_stopping_are_dropped_at_a_scrape(
    processes: Processes,  # noqa: F811
) -> None:
    processes.become(DEAD_PID)  # killed (kill -9) mid-reply: it never stopped
    dead = Metrics([SONNET], shared_dir=processes.path)
    two_ok_turns(dead)
    dead.turn_started()
    processes.this_process()
    alive = Metrics([SONNET], shared_dir=processes.path)
    try:
        alive.turn_started()
        figures = parse(alive.render(QUIET).decode())
        assert (figures[OK], figures[LIVE]) == (2, 1)
        assert f"gauge_livesum_{DEAD_PID}.db" not in processes.files()
        assert f"counter_{DEAD_PID}.db" in processes.files()
    finally:
        alive.close()


def test_several_apps_in_one_process_add_up_as_one(processes: Processes) -> None:  # noqa: F811
    processes.this_process()
    first = Metrics([SONNET], shared_dir=processes.path)
    second = Metrics([SONNET], shared_dir=processes.path)
    two_ok_turns(first)
    two_ok_turns(second)
    first.turn_started()
    second.turn_started()
    second.turn_started()
    figures = parse(first.render(QUIET).decode())
    assert (figures[OK], figures[LIVE]) == (4, 3)

    first.close()  # the other app of this process still runs: its live turns still count
    assert parse(second.render(QUIET).decode())[LIVE] == 3
    second.close()
    third = Metrics([SONNET], shared_dir=processes.path)
    try:
        two_ok_turns(third)
        figures = parse(third.render(QUIET).decode())
        assert (figures[OK], figures[LIVE]) == (6, 0)  # the process's counts go on
    finally:
        third.close()


def test_without_the_variable_each_app_keeps_its_own_registry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    first, second = Metrics([SONNET]), Metrics([SONNET])
    two_ok_turns(first)
    first.turn_started()
    assert parse(first.render(QUIET).decode())[OK] == 2
    figures = parse(second.render(QUIET).decode())
    assert (figures[OK], figures[LIVE]) == (0, 0)


def test_the_library_loaded_before_the_variable_was_set_is_refused(tmp_path: Path) -> None:
    assert values.ValueClass is values.MutexValue  # this test process has no such variable
    with pytest.raises(ConfigError, match="before the process starts"):
        Metrics([SONNET], shared_dir=tmp_path)


def test_settings_read_the_directory_and_refuse_one_that_is_not(tmp_path: Path) -> None:
    env = {"UNDERSTUDY_DATA_DIR": str(tmp_path)}
    assert Settings.from_env(env).metrics_dir is None
    with_dir = Settings.from_env({**env, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)})
    assert with_dir.metrics_dir == tmp_path.resolve()
    with pytest.raises(ConfigError, match="is not a directory"):
        Settings.from_env({**env, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "missing")})
