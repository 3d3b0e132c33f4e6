"""The chain against in-memory providers: timeouts, jitter, cancellation, provider bugs, and the
sentences, without any network."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace

import pytest

from web.chain import Chain
from web.events import (
    AttemptRecord,
    ChainEvent,
    Completed,
    Exhausted,
    TextDelta,
    TierInfo,
    TierStarted,
)
from web.providers.base import (
    ChatMessage,
    ChatRequest,
    ErrorKind,
    ProviderError,
    StreamItem,
    Usage,
)
from web.providers.base import TextDelta as ProviderDelta
from web.status import AttemptOutcome
from web.tiers import Tier
from web.wording import degraded_reason

from support import engine
from support.engine import SHORT

# The fakes here answer in microseconds, or hang on purpose: SHORT's half-second limits.
SONNET_TIER = replace(engine.SONNET_TIER, timeouts=SHORT)
HAIKU_TIER = replace(engine.HAIKU_TIER, timeouts=SHORT)
GPT_TIER = replace(engine.GPT_TIER, timeouts=SHORT)

REQUEST = ChatRequest(messages=(ChatMessage("user", "hi"),))
K_OVER = ErrorKind.OVERLOADED

Step = str | float | ProviderError | Exception | Usage
"""A str is a text delta, a float a pause (seconds), an exception is raised, a Usage yielded."""

OK: list[Step] = ["Hello", " world", Usage(3, 2, "req_fake")]


@dataclass
class FakeProvider:
    """Plays one script per call; records how many streams were opened and closed."""

    scripts: list[list[Step]]
    name: str = "fake"
    opened: int = 0
    closed: int = 0
    calls: list[str] = field(default_factory=list)

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator[StreamItem]:
        script = self.scripts[min(self.opened, len(self.scripts) - 1)]
        self.opened += 1
        self.calls.append(model)
        try:
            for step in script:
                if isinstance(step, str):
                    yield ProviderDelta(step)
                elif isinstance(step, float):
                    await asyncio.sleep(step)
                elif isinstance(step, Exception):
                    raise step
                else:
                    yield step
        finally:
            self.closed += 1

    async def aclose(self) -> None:
        pass


def chain_of(*providers: FakeProvider, **kwargs: object) -> Chain:
    configs = (SONNET_TIER, HAIKU_TIER, GPT_TIER)
    tiers = [Tier.build(configs[i], i, p) for i, p in enumerate(providers)]
    return Chain(tiers, rng=kwargs.pop("rng", random.Random(1)), **kwargs)  # type: ignore[arg-type]


Timeline = list[ChainEvent | AttemptRecord]


async def collect(chain: Chain) -> Timeline:
    """The events and, where each attempt ended, its record (from on_attempt), in order."""
    timeline: Timeline = []
    async for event in chain.run(REQUEST, on_attempt=timeline.append):
        timeline.append(event)
    return timeline


def failures(timeline: Timeline) -> list[AttemptRecord]:
    return [
        e for e in timeline if isinstance(e, AttemptRecord) and e.outcome is AttemptOutcome.FAILED
    ]


def err(kind: ErrorKind, **kwargs: object) -> ProviderError:
    return ProviderError(kind, f"fake {kind.value}", **kwargs)  # type: ignore[arg-type]


async def test_needs_a_tier() -> None:
    with pytest.raises(ValueError):
        Chain([])


async def test_first_token_timeout_then_idle_timeout() -> None:
    hangs_first = FakeProvider([[5.0, *OK]])
    stalls = FakeProvider([["partial", 5.0, *OK]])
    answers = FakeProvider([OK])
    started = time.monotonic()
    events = await collect(chain_of(hangs_first, stalls, answers))
    elapsed = time.monotonic() - started
    failed = failures(events)
    assert [f.error_message for f in failed] == [
        "no first token within 0.5 s",
        "no text for 0.5 s (idle timeout)",
    ]
    assert [f.after_text for f in failed] == [False, True]
    assert isinstance(events[-1], Completed) and events[-1].text == "Hello world"
    assert 1.0 <= elapsed < 2.0
    assert (hangs_first.closed, stalls.closed) == (1, 1)


async def test_jitter_comes_from_the_rng() -> None:
    class Recording(random.Random):
        calls: list[tuple[float, float]] = []

        def uniform(self, a: float, b: float) -> float:
            self.calls.append((a, b))
            return 0.2

    flaky = FakeProvider([[err(ErrorKind.OVERLOADED)], OK])
    started = time.monotonic()
    events = await collect(chain_of(flaky, rng=Recording(), backoff_s=0.4))
    assert Recording.calls == [(0.0, 0.4)]
    assert 0.2 <= time.monotonic() - started < 0.8
    starts = [e for e in events if isinstance(e, TierStarted)]
    assert [(s.tier.name, s.attempt, s.retry) for s in starts] == [
        ("sonnet", 1, False),
        ("sonnet", 2, True),
    ]


async def test_at_most_one_retry_per_tier() -> None:
    down = FakeProvider([[err(ErrorKind.CONNECTION)]])
    events = await collect(chain_of(down, FakeProvider([OK])))
    assert down.opened == 2
    assert isinstance(events[-1], Completed) and events[-1].tier.name == "haiku"


async def test_a_try_that_already_waited_long_is_not_retried() -> None:
    # A connection closed after 0.3 s of silence: longer than the retry cap (0.1 s here), so the
    # user has waited enough and Haiku is asked at once instead of Sonnet again.
    slow_to_fail = FakeProvider([[0.3, err(ErrorKind.CONNECTION)], OK])
    haiku = FakeProvider([OK])
    events = await collect(chain_of(slow_to_fail, haiku, retry_after_cap_s=0.1))
    assert slow_to_fail.opened == 1 and haiku.opened == 1
    assert isinstance(events[-1], Completed) and events[-1].tier.name == "haiku"


@pytest.mark.parametrize(
    "kind",
    [ErrorKind.TIMEOUT, ErrorKind.TRUNCATED, ErrorKind.MALFORMED, ErrorKind.QUOTA_EXHAUSTED],
)
async def test_kinds_that_move_on_without_retry(kind: ErrorKind) -> None:
    failing = FakeProvider([[err(kind, retry_after=0.1)]])
    events = await collect(chain_of(failing, FakeProvider([OK])))
    assert failing.opened == 1
    assert isinstance(events[-1], Completed) and events[-1].tier.name == "haiku"


async def test_a_provider_bug_is_a_failed_attempt_not_a_crash(
    caplog: pytest.LogCaptureFixture,
) -> None:
    buggy = FakeProvider([["so far", KeyError("oops")]])
    with caplog.at_level(logging.ERROR, logger="web.chain"):
        events = await collect(chain_of(buggy, FakeProvider([OK])))
    failure = failures(events)[0]
    assert failure.error_kind is ErrorKind.SERVER_ERROR
    assert failure.error_message == "unexpected KeyError: 'oops'"
    assert "non-ProviderError" in caplog.text
    assert isinstance(events[-1], Completed) and events[-1].tier.name == "haiku"


async def test_a_stream_without_usage_is_truncated() -> None:
    events = await collect(chain_of(FakeProvider([["Hello"]]), FakeProvider([OK])))
    failure = failures(events)[0]
    assert failure.error_kind is ErrorKind.TRUNCATED and failure.after_text
    assert isinstance(events[-1], Completed) and events[-1].text == "Hello world"


async def test_consumer_closing_early_cancels_the_attempt() -> None:
    slow = FakeProvider([["one", " two", 5.0, *OK]])
    records: list[AttemptRecord] = []
    run = chain_of(slow).run(REQUEST, on_attempt=records.append)
    assert isinstance(await anext(run), TierStarted)
    assert await anext(run) == TextDelta("one")
    started = time.monotonic()
    await run.aclose()
    assert time.monotonic() - started < 0.5
    assert slow.closed == 1
    assert [(r.outcome, r.after_text) for r in records] == [("cancelled", True)]


async def test_cancelling_the_consumer_task_cancels_the_upstream_stream() -> None:
    hanging = FakeProvider([[30.0, *OK]])
    records: list[AttemptRecord] = []

    async def consume() -> None:
        async for _ in chain_of(hanging).run(REQUEST, on_attempt=records.append):
            pass

    task = asyncio.create_task(consume())
    for _ in range(100):  # loop turns, not time: until the chain awaits the hanging stream
        if hanging.opened:
            break
        await asyncio.sleep(0)
    assert hanging.opened == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 1.0)
    assert hanging.closed == 1
    assert [r.outcome for r in records] == ["cancelled"]


async def test_closing_the_turn_at_tier_started_still_records_the_attempt() -> None:
    provider = FakeProvider([OK])
    records: list[AttemptRecord] = []
    run = chain_of(provider).run(REQUEST, on_attempt=records.append)
    started = await anext(run)
    assert isinstance(started, TierStarted) and started.attempt == 1
    await run.aclose()
    assert [(r.attempt, r.outcome, r.after_text) for r in records] == [(1, "cancelled", False)]
    assert provider.opened == 0  # nothing was sent upstream


async def test_cancelling_the_consumer_at_tier_started_still_records_the_attempt() -> None:
    records: list[AttemptRecord] = []
    got_started = asyncio.Event()

    async def consume() -> None:
        run = chain_of(FakeProvider([OK])).run(REQUEST, on_attempt=records.append)
        async with contextlib.aclosing(run):
            async for event in run:
                assert isinstance(event, TierStarted)
                got_started.set()
                await asyncio.sleep(30)  # cancelled here, while the chain waits at TierStarted

    task = asyncio.create_task(consume())
    await asyncio.wait_for(got_started.wait(), 1.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 1.0)
    assert [r.outcome for r in records] == ["cancelled"]


async def test_each_tier_asks_for_its_own_max_output_tokens() -> None:
    seen: list[int] = []

    class Recording(FakeProvider):
        def stream(self, request: ChatRequest, model: str) -> AsyncIterator[StreamItem]:
            seen.append(request.max_tokens)
            return super().stream(request, model)

    tiers = [
        Tier.build(replace(SONNET_TIER, max_output_tokens=300), 0, Recording([[err(K_OVER)]])),
        Tier.build(HAIKU_TIER, 1, Recording([OK])),
    ]
    events = [e async for e in Chain(tiers, backoff_s=0.0).run(REQUEST)]
    assert isinstance(events[-1], Completed)
    assert seen == [300, 300, HAIKU_TIER.max_output_tokens]  # the retry asks for the same


async def test_on_attempt_sees_every_record_as_it_ends() -> None:
    timeline = await collect(
        chain_of(FakeProvider([[err(ErrorKind.RATE_LIMITED)]]), FakeProvider([OK]))
    )
    assert isinstance(timeline[-1], Completed)
    records = [e for e in timeline if isinstance(e, AttemptRecord)]
    assert [r.outcome for r in records] == ["failed", "ok"]
    # Each record arrives when its attempt ends: the failure before Haiku starts, the success
    # before the Completed it leads to.
    kinds = [type(e).__name__ for e in timeline if not isinstance(e, TextDelta)]
    assert kinds == ["TierStarted", "AttemptRecord", "TierStarted", "AttemptRecord", "Completed"]
    assert records[1].request_id == "req_fake"


async def test_no_attempt_starts_after_the_deadline() -> None:
    slow = replace(SHORT, first_token_s=5.0)
    tiers = [
        Tier.build(replace(SONNET_TIER, timeouts=slow), 0, FakeProvider([[0.3, *OK]])),
        Tier.build(replace(HAIKU_TIER, timeouts=slow), 1, later := FakeProvider([OK])),
    ]
    events = [e async for e in Chain(tiers, deadline_s=0.2).run(REQUEST)]
    assert later.opened == 0
    assert isinstance(events[-1], Exhausted)
    assert events[-1].message == (
        "No model answered within 0.2 s: Sonnet timed out. Try again in a moment."
    )


def _info(name: str, label: str, index: int) -> TierInfo:
    return TierInfo(name, "anthropic", name, label, "" if index == 0 else "badge", index)


SONNET_INFO = _info("sonnet", "Sonnet", 0)
HAIKU_INFO = _info("haiku", "Haiku", 1)
GPT_INFO = _info("openai", "GPT-5.5", 2)


def _failed(tier: TierInfo, kind: ErrorKind, number: int) -> AttemptRecord:
    return AttemptRecord(tier, number, 0.0, 0.1, None, AttemptOutcome.FAILED, error_kind=kind)


def _records(*pairs: tuple[TierInfo, ErrorKind]) -> Sequence[AttemptRecord]:
    return [_failed(t, k, i) for i, (t, k) in enumerate(pairs, start=1)]


def test_degraded_reason_sentences() -> None:
    assert degraded_reason(SONNET_INFO, []) is None
    assert degraded_reason(HAIKU_INFO, _records((SONNET_INFO, ErrorKind.RATE_LIMITED))) == (
        "Reply generated by Haiku because Sonnet was unavailable (rate limited)."
    )
    two = _records(
        (SONNET_INFO, ErrorKind.RATE_LIMITED),
        (HAIKU_INFO, ErrorKind.SERVER_ERROR),
        (HAIKU_INFO, ErrorKind.OVERLOADED),
    )
    assert degraded_reason(GPT_INFO, two) == (
        "Reply generated by GPT-5.5 because Sonnet was unavailable (rate limited) and Haiku was "
        "unavailable (overloaded)."
    )
    own_retry = _records((SONNET_INFO, ErrorKind.TIMEOUT), (HAIKU_INFO, ErrorKind.CONNECTION))
    assert degraded_reason(HAIKU_INFO, own_retry) == (
        "Reply generated by Haiku because Sonnet was unavailable (timed out)."
    )
    three_tiers = (SONNET_INFO, HAIKU_INFO, GPT_INFO, _info("extra", "Extra", 3))
    three = _records(*((t, ErrorKind.OVERLOADED) for t in three_tiers[:3]))
    assert degraded_reason(three_tiers[3], three) == (
        "Reply generated by Extra because Sonnet was unavailable (overloaded), Haiku was "
        "unavailable (overloaded) and GPT-5.5 was unavailable (overloaded)."
    )


async def test_steady_text_keeps_the_idle_timer_moving() -> None:
    # Tokens every 0.1 s for 1 s: the 0.5 s idle timer must keep moving, never fire (only a
    # 0.4 s stall of the whole process could fire it; 0.3 s gaps left 0.2 s).
    letters = "abcdefghijk"
    script: list[Step] = [step for letter in letters for step in (letter, 0.1)][:-1]
    steady = FakeProvider([[*script, OK[-1]]])
    started = time.monotonic()
    events = await collect(chain_of(steady))
    assert isinstance(events[-1], Completed) and events[-1].text == letters
    assert 0.99 <= time.monotonic() - started < 2.5


async def test_a_slow_consumer_does_not_count_against_the_idle_timeout() -> None:
    fast = FakeProvider([OK])
    events: list[ChainEvent] = []
    async for event in chain_of(fast).run(REQUEST):
        events.append(event)
        if isinstance(event, TextDelta):
            await asyncio.sleep(0.7)  # longer than idle_s, while the chain is not waiting
    assert isinstance(events[-1], Completed) and events[-1].text == "Hello world"


class SwallowsCancellation:
    """A badly behaved provider: it catches the cancellation meant to stop it and carries on."""

    name = "swallower"

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator[StreamItem]:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(5)
        yield ProviderDelta("late")
        yield Usage(1, 1, None)

    async def aclose(self) -> None:
        pass


async def test_a_provider_that_swallows_cancellation_still_times_out() -> None:
    tiers = [
        Tier.build(SONNET_TIER, 0, SwallowsCancellation()),  # type: ignore[arg-type]
        Tier.build(HAIKU_TIER, 1, FakeProvider([[0.05, *OK]])),
    ]
    started = time.monotonic()
    events = await collect(Chain(tiers))
    failure = failures(events)[0]
    assert failure.error_kind is ErrorKind.TIMEOUT
    # The swallowed cancel left nothing pending: Haiku's own awaits ran normally.
    assert isinstance(events[-1], Completed) and events[-1].tier.name == "haiku"
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
    assert time.monotonic() - started < 1.5
