"""web.redis_util: the once-a-minute warning (with a clock the test moves) and text()."""

from __future__ import annotations

import logging

import pytest

from web.redis_util import RateLimitedWarning, text

LOGGER = "test.redis_util"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def warned(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def test_a_warning_is_logged_at_most_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock(1000.0)
    warn = RateLimitedWarning(logging.getLogger(LOGGER), clock=clock)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        warn("first")
        warn("again at once")
        clock.now += 60  # a minute exactly is not more than a minute
        warn("a minute later")
        clock.now += 0.5
        warn("just over a minute later")
        clock.now += 59
        warn("within a minute of the last one logged")
        clock.now += 1.5
        warn("over a minute after the last one logged")
    assert warned(caplog) == [
        "first",
        "just over a minute later",
        "over a minute after the last one logged",
    ]


def test_the_first_warning_is_logged_even_just_after_the_boot(
    caplog: pytest.LogCaptureFixture,
) -> None:
    warn = RateLimitedWarning(logging.getLogger(LOGGER), clock=Clock(12.0))  # monotonic: 12 s up
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        warn("Redis is down")
        warn("still down")
    assert warned(caplog) == ["Redis is down"]


def test_each_warning_has_its_own_minute(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock(1000.0)
    log = logging.getLogger(LOGGER)
    writes, reads = RateLimitedWarning(log, clock=clock), RateLimitedWarning(log, clock=clock)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        writes("could not write")
        reads("could not read")
        writes("could not write again")
    assert warned(caplog) == ["could not write", "could not read"]


def test_the_warning_names_its_caller(caplog: pytest.LogCaptureFixture) -> None:
    warn = RateLimitedWarning(logging.getLogger(LOGGER), clock=Clock(1000.0))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        warn("from here")
    [record] = caplog.records
    assert record.funcName == "test_the_warning_names_its_caller"


def test_text_decodes_bytes_and_keeps_str() -> None:
    assert text(b"1700000000000-0") == "1700000000000-0"
    assert text("caf\u00e9".encode()) == "caf\u00e9"
    assert text("already text") == "already text"
