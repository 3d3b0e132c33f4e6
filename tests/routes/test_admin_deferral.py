"""The admin's words for the deferral (web.routes.admin_deferral) and its attempt clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from web.db.logged_turns import AttemptView
from web.routes.admin_deferral import attempt_rows, format_duration
from web.routes.admin_render import clock_for, format_clock, format_stamp
from web.status import AttemptOutcome

T0 = datetime(2026, 12, 1, 23, 58, tzinfo=UTC)


@pytest.mark.parametrize(
    ("span", "text"),
    [
        (None, "-"),
        (timedelta(seconds=-3), "0 s"),
        (timedelta(seconds=0.9), "0 s"),
        (timedelta(seconds=59.99), "59 s"),
        (timedelta(minutes=1), "1 min"),
        (timedelta(minutes=4, seconds=12), "4 min 12 s"),
        (timedelta(hours=1), "1 h"),
        (timedelta(hours=3, minutes=5, seconds=59), "3 h 5 min"),
        (timedelta(days=1), "1 d"),
        (timedelta(days=2, hours=1, minutes=30), "2 d 1 h"),
    ],
)
def test_format_duration(span: timedelta | None, text: str) -> None:
    assert format_duration(span) == text


def view(seq: int, tier: str, outcome: AttemptOutcome, request_id: str | None) -> AttemptView:
    return AttemptView(
        seq,
        tier,
        "anthropic",
        "claude-sonnet-4-6",
        T0 + timedelta(minutes=seq),
        10.0 * seq,
        None,
        outcome,
        None,
        None,
        None,
        request_id,
        None,
        False,
    )


def test_runs_of_polls_of_one_batch_fold_and_nothing_else_does() -> None:
    attempts = [
        view(1, "sonnet", AttemptOutcome.FAILED, None),
        view(2, "deferral", AttemptOutcome.SUBMITTED, "b1"),
        view(3, "deferral", AttemptOutcome.PENDING, "b1"),
        view(4, "deferral", AttemptOutcome.PENDING, "b1"),
        view(5, "deferral", AttemptOutcome.PENDING, "b1"),
        view(6, "deferral", AttemptOutcome.PENDING, "b2"),  # another batch: a new run
        view(7, "deferral", AttemptOutcome.FAILED, "b2"),
        view(8, "deferral", AttemptOutcome.FAILED, "b2"),  # failures are never folded
    ]
    rows = attempt_rows(attempts)
    assert [(r.seqs, r.count) for r in rows] == [
        ("1", 1),
        ("2", 1),
        ("3-5", 3),
        ("6", 1),
        ("7", 1),
        ("8", 1),
    ]
    run = rows[2]
    assert (run.first, run.last) == (attempts[2], attempts[4])
    assert run.longest_ms == 50.0
    assert [r.note for r in rows] == [
        "",
        "handed to its backend",
        "still processing",
        "still processing",
        "",
        "",
    ]
    assert attempt_rows([]) == ()


def test_the_attempt_clock_shows_the_date_only_when_the_attempts_span_days() -> None:
    same_day = [T0, T0 + timedelta(minutes=1)]
    assert clock_for(same_day) is format_clock
    assert clock_for([]) is format_clock
    spans = clock_for([T0, T0 + timedelta(minutes=3)])
    assert spans is format_stamp
    assert spans(T0) == "2026-12-01 23:58:00.000"
    assert format_clock(T0) == "23:58:00.000"
