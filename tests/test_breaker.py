"""Circuit breakers (web.breaker, web.breaker_store): transitions on a clock the test moves, the
state shared through the local Redis, and Redis being down."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator

import pytest

from web.breaker import BreakerConfig, BreakerState, Effect, TierBreaker, Verdict, classify
from web.breaker_store import Breakers, LocalStore, RedisStore
from web.events import AttemptRecord
from web.providers.base import ErrorKind
from web.status import AttemptOutcome

from support.outcomes import HAIKU, SONNET, cancelled, failed, ok

CONFIG = BreakerConfig(window_s=60, min_calls=4, failure_rate=0.5, open_s=30, max_open_s=100)
REDIS_URL = "redis://127.0.0.1:6379/0"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def board(clock: Clock, store: LocalStore | RedisStore | None = None) -> Breakers:
    return Breakers({"sonnet": CONFIG, "haiku": CONFIG}, store, clock=clock)


def overloaded() -> AttemptRecord:
    return failed(SONNET, 1, ErrorKind.OVERLOADED, 529)


async def state_of(breakers: Breakers, tier: str = "sonnet") -> BreakerState:
    return (await breakers.states())[tier].state


def test_what_counts() -> None:
    assert classify(ok(SONNET, 1), 2.0) is Effect.SUCCESS
    for kind in (
        ErrorKind.RATE_LIMITED,
        ErrorKind.OVERLOADED,
        ErrorKind.TIMEOUT,
        ErrorKind.CONNECTION,
    ):
        assert classify(failed(SONNET, 1, kind, None), 2.0) is Effect.FAILURE
    for kind in (ErrorKind.QUOTA_EXHAUSTED, ErrorKind.AUTH):
        assert classify(failed(SONNET, 1, kind, None), 2.0) is Effect.TRIP
    long_wait = failed(SONNET, 1, ErrorKind.RATE_LIMITED, 429, retry_after=40.0)
    assert classify(long_wait, 2.0) is Effect.TRIP
    short_wait = failed(SONNET, 1, ErrorKind.RATE_LIMITED, 429, retry_after=1.0)
    assert classify(short_wait, 2.0) is Effect.FAILURE
    for kind in (ErrorKind.BAD_REQUEST, ErrorKind.CONTENT_POLICY, ErrorKind.CONTEXT_TOO_LONG):
        assert classify(failed(SONNET, 1, kind, 400), 2.0) is Effect.NEUTRAL
    assert classify(cancelled(SONNET, 1), 2.0) is Effect.NEUTRAL
    abandoned = AttemptRecord(SONNET, 1, 0.0, 4.0, None, AttemptOutcome.ABANDONED)
    assert classify(abandoned, 2.0) is Effect.NEUTRAL


async def test_opens_on_the_failure_rate_only_after_min_calls() -> None:
    clock = Clock()
    breakers = board(clock)
    for _ in range(3):
        await breakers.report("sonnet", overloaded(), probe=False)
    assert await state_of(breakers) is BreakerState.CLOSED  # 3 of 3 failed, but 4 are needed
    await breakers.report("sonnet", ok(SONNET, 1), probe=False)
    assert await state_of(breakers) is BreakerState.OPEN  # 3 of 4 >= 50%
    admission = await breakers.admit("sonnet")
    assert admission.verdict is Verdict.SKIP
    assert admission.opened_at == clock.now and admission.reason is ErrorKind.OVERLOADED
    assert (await breakers.admit("haiku")).verdict is Verdict.PASS  # one breaker per tier


async def test_old_failures_leave_the_window() -> None:
    clock = Clock()
    breakers = board(clock)
    for _ in range(3):
        await breakers.report("sonnet", overloaded(), probe=False)
    clock.now += 61
    for _ in range(3):
        await breakers.report("sonnet", ok(SONNET, 1), probe=False)
    await breakers.report("sonnet", overloaded(), probe=False)
    assert await state_of(breakers) is BreakerState.CLOSED  # 1 of 4 in the last minute


async def test_a_long_retry_after_opens_at_once_for_that_long() -> None:
    clock = Clock()
    breakers = board(clock)
    await breakers.report(
        "sonnet", failed(SONNET, 1, ErrorKind.RATE_LIMITED, 429, retry_after=45.0), probe=False
    )
    assert (await breakers.admit("sonnet")).verdict is Verdict.SKIP
    clock.now += 44
    assert (await breakers.admit("sonnet")).verdict is Verdict.SKIP  # not open_s (30): 45 s
    clock.now += 1
    assert (await breakers.admit("sonnet")).verdict is Verdict.PROBE


async def test_half_open_lets_exactly_one_probe_through_and_success_closes() -> None:
    clock = Clock()
    breakers = board(clock)
    await breakers.report("sonnet", failed(SONNET, 1, ErrorKind.QUOTA_EXHAUSTED, 429), probe=False)
    clock.now += 30
    assert (await breakers.admit("sonnet")).verdict is Verdict.PROBE
    assert (await breakers.admit("sonnet")).verdict is Verdict.SKIP  # the others keep skipping
    await breakers.report("sonnet", ok(SONNET, 1), probe=True)
    assert await state_of(breakers) is BreakerState.CLOSED
    assert (await breakers.admit("sonnet")).verdict is Verdict.PASS
    assert (await breakers.states())["sonnet"].opened_at is None


async def test_a_failed_probe_reopens_for_twice_as_long_up_to_the_cap() -> None:
    clock = Clock()
    breakers = board(clock)
    await breakers.report("sonnet", failed(SONNET, 1, ErrorKind.AUTH, 401), probe=False)
    first_opened = clock.now
    waits = []
    for _ in range(4):
        state = (await breakers.states())["sonnet"]
        waits.append(state.until - clock.now)
        clock.now = state.until
        assert (await breakers.admit("sonnet")).verdict is Verdict.PROBE
        await breakers.report("sonnet", overloaded(), probe=True)
    assert waits == [30, 60, 100, 100]  # doubled, capped at max_open_s
    state = (await breakers.states())["sonnet"]
    assert state.opened_at == first_opened  # "unavailable since" the outage began
    assert state.reason is ErrorKind.OVERLOADED


async def test_a_probe_that_was_abandoned_frees_the_slot() -> None:
    clock = Clock()
    breakers = board(clock)
    await breakers.report("sonnet", failed(SONNET, 1, ErrorKind.AUTH, 401), probe=False)
    clock.now += 30
    assert (await breakers.admit("sonnet")).verdict is Verdict.PROBE
    await breakers.report("sonnet", cancelled(SONNET, 1), probe=True)
    assert (await breakers.admit("sonnet")).verdict is Verdict.PROBE  # the next live try probes


async def test_a_probe_whose_process_died_is_replaced_after_its_timeout() -> None:
    clock = Clock()
    breakers = board(clock)
    await breakers.report("sonnet", failed(SONNET, 1, ErrorKind.AUTH, 401), probe=False)
    clock.now += 30
    assert (await breakers.admit("sonnet")).verdict is Verdict.PROBE  # and never reports
    clock.now += CONFIG.probe_timeout_s - 1
    assert (await breakers.admit("sonnet")).verdict is Verdict.SKIP
    clock.now += 1
    assert (await breakers.admit("sonnet")).verdict is Verdict.PROBE


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix of this test's own on the local Redis, deleted afterwards."""
    from redis.asyncio import Redis

    prefix = f"understudy-test:{uuid.uuid4().hex}:"
    yield prefix
    client = Redis.from_url(REDIS_URL)
    keys = [key async for key in client.scan_iter(match=prefix + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def test_two_processes_share_one_breaker_through_redis(redis_prefix: str) -> None:
    clock = Clock()
    one = board(clock, RedisStore(REDIS_URL, prefix=redis_prefix))
    two = board(clock, RedisStore(REDIS_URL, prefix=redis_prefix))
    try:
        for _ in range(2):
            await one.report("sonnet", overloaded(), probe=False)
            await two.report("sonnet", overloaded(), probe=False)
        assert (await two.admit("sonnet")).verdict is Verdict.SKIP  # opened by both, seen by both
        assert (await one.admit("sonnet")).verdict is Verdict.SKIP
        clock.now += 30
        verdicts = {(await one.admit("sonnet")).verdict, (await two.admit("sonnet")).verdict}
        assert verdicts == {Verdict.PROBE, Verdict.SKIP}  # one probe between the two processes
        await one.report("sonnet", ok(SONNET, 1), probe=True)
        assert (await two.admit("sonnet")).verdict is Verdict.PASS
    finally:
        await one.aclose()
        await two.aclose()


async def test_redis_down_never_fails_a_turn_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    down = RedisStore("redis://127.0.0.1:1/0", clock=clock)  # nothing listens on port 1
    breakers = board(clock, down)
    try:
        with caplog.at_level(logging.WARNING, logger="web.breaker_store"):
            for _ in range(4):
                await breakers.report("sonnet", overloaded(), probe=False)
                clock.now += 6  # past the retry pause: Redis is tried (and fails) every time
            assert (await breakers.admit("sonnet")).verdict is Verdict.SKIP  # its own state
            assert (await breakers.states())["sonnet"].state is BreakerState.OPEN
        warnings = [r for r in caplog.records if "Redis is unreachable" in r.getMessage()]
        assert len(warnings) == 1
        assert "HAIKU" not in caplog.text and HAIKU.label not in caplog.text
    finally:
        await down.aclose()


async def test_concurrent_changes_are_all_kept_in_a_few_transactions(redis_prefix: str) -> None:
    """Two processes, 100 concurrent turns each reporting at once: no change is lost, and each
    process sends its changes in batches (one transaction per tier at a time), not one WATCH
    per turn that makes all the others read again."""
    one = RedisStore(REDIS_URL, prefix=redis_prefix)
    two = RedisStore(REDIS_URL, prefix=redis_prefix)
    applied = 0

    def call(state: TierBreaker) -> None:
        nonlocal applied
        applied += 1
        state.calls.append((float(len(state.calls)), False))

    try:
        await asyncio.gather(
            *(store.change("sonnet", call) for store in (one, two) for _ in range(100))
        )
        calls = (await one.read(["sonnet"]))["sonnet"].calls
        assert len(calls) == 200
        # Each transaction applies its whole batch; a batch raced by the other process is
        # applied again, so the count of applications stays near the count of changes.
        assert applied < 400, applied
    finally:
        await one.aclose()
        await two.aclose()
