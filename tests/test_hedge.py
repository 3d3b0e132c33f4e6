"""Hedged first tokens (web.hedge), against held providers: who wins, what is recorded and shown,
the budget, and the chain's other guarantees while two tries run.

The providers never answer on their own: they wait on an event the test holds (a hedge starts
after a millisecond of silence; the tiers' first-token timeout is a minute), so every verdict
comes from what the test releases, not from how fast the machine is. Where a provider must be
slower than ``hedge_after_s`` to show that no hedge starts, it sleeps itself (a slow upstream),
and the test asserts what can never happen, however long the sleep turns out to be.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace

from sim.clock import FakeClock

from web.breaker import BreakerState
from web.breaker_store import Breakers
from web.chain import Chain, TurnControl
from web.events import (
    AttemptRecord,
    ChainEvent,
    Completed,
    Exhausted,
    TextDelta,
    TierStarted,
)
from web.hedge import HedgeBudget
from web.live import LiveTurn
from web.providers.base import ChatMessage, ChatRequest, ErrorKind, ProviderError, StreamItem, Usage
from web.providers.base import TextDelta as ProviderDelta
from web.settings import TierConfig, Timeouts
from web.status import AttemptOutcome, HedgeRole
from web.tiers import Tier
from web.wording import degraded_reason, lost_hedge_note, waiting_status

from support.engine import GPT_TIER, HAIKU_TIER, SONNET_TIER

REQUEST = ChatRequest(messages=(ChatMessage("user", "hi"),))
PATIENT = Timeouts(connect_s=1.0, first_token_s=60.0, idle_s=60.0, total_s=120.0)
HEDGE_AFTER_S = 0.001
EVERY_TURN = 1.0
"""A budget share that lets every turn hedge (the budget has tests of its own)."""


@dataclass
class Held:
    """A provider that waits until the test releases it, then answers "Hello" (or fails)."""

    release: asyncio.Event = field(default_factory=asyncio.Event)
    asked: asyncio.Event = field(default_factory=asyncio.Event)
    """Its stream was read: the request is out."""
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    """Its stream was closed (its HTTP request, for a real provider)."""
    fail: ProviderError | None = None
    first: str | None = None
    """Text sent before waiting."""
    slow_s: float = 0.0
    """How long it takes before anything (after ``first``, if any): a slow upstream."""
    closing: asyncio.Event | None = None
    """If set, closing its stream waits for this (a slow close), after setting ``closing_begun``."""
    closing_begun: asyncio.Event = field(default_factory=asyncio.Event)
    opened: int = 0
    closed: int = 0
    name: str = "held"

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator[StreamItem]:
        self.opened += 1
        self.asked.set()
        try:
            if self.first is not None:
                yield ProviderDelta(self.first)
            if self.slow_s:
                await asyncio.sleep(self.slow_s)
            await self.release.wait()
            if self.fail is not None:
                raise self.fail
            yield ProviderDelta("Hello")
            yield Usage(3, 1, "req")
        finally:
            if self.closing is not None:
                self.closing_begun.set()
                await self.closing.wait()
            self.closed += 1
            self.ended.set()

    async def aclose(self) -> None:
        pass


def answering(**kwargs: object) -> Held:
    held = Held(**kwargs)  # type: ignore[arg-type]
    held.release.set()
    return held


def hedging(config: TierConfig) -> TierConfig:
    return replace(config, timeouts=PATIENT, hedge_after_s=HEDGE_AFTER_S)


def chain_of(
    *providers: Held,
    configs: tuple[TierConfig, ...] = (
        hedging(SONNET_TIER),
        replace(HAIKU_TIER, timeouts=PATIENT),
        replace(GPT_TIER, timeouts=PATIENT),
    ),
    budget: HedgeBudget | None = None,
    breakers: Breakers | None = None,
) -> Chain:
    tiers = [Tier.build(configs[i], i, p) for i, p in enumerate(providers)]
    return Chain(
        tiers,
        hedge_budget=budget or HedgeBudget(share=EVERY_TURN, clock=FakeClock()),
        breakers=breakers,
        backoff_s=0.0,
    )


Timeline = list[ChainEvent | AttemptRecord]


async def run(
    chain: Chain,
    control: TurnControl | None = None,
    on_start: Callable[[TierStarted], Awaitable[None]] | None = None,
) -> Timeline:
    """The timeline of a turn; ``on_start(started)`` runs as each TierStarted arrives."""
    timeline: Timeline = []

    async def consume() -> None:
        async with contextlib.aclosing(
            chain.run(REQUEST, on_attempt=timeline.append, control=control)
        ) as events:
            async for event in events:
                timeline.append(event)
                if isinstance(event, TierStarted) and on_start is not None:
                    await on_start(event)

    await asyncio.wait_for(consume(), 10)
    return timeline


def story(timeline: Timeline) -> list[str]:
    """What a consumer saw and what the turn recorded, in order, in words."""
    lines = []
    for event in timeline:
        match event:
            case TierStarted(tier=tier):
                lines.append(f"asks {tier.name}")
            case TextDelta(text=text):
                lines.append(f"text {text}")
            case AttemptRecord(tier=tier, outcome=outcome):
                lines.append(f"{tier.name} {outcome}")
            case Completed(tier=tier):
                lines.append(f"done by {tier.name}")
            case Exhausted():
                lines.append("exhausted")
    return lines


def records(timeline: Timeline) -> dict[str, AttemptRecord]:
    """The last record of each tier."""
    return {e.tier.name: e for e in timeline if isinstance(e, AttemptRecord)}


def completed(timeline: Timeline) -> Completed:
    done = timeline[-1]
    assert isinstance(done, Completed), done
    return done


def later(step: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
    async def go() -> None:
        await step()

    return asyncio.get_running_loop().create_task(go())


async def test_the_hedge_answers_first_and_the_slow_try_is_cancelled() -> None:
    sonnet, haiku, gpt = Held(), answering(), answering()
    closed_when_haiku_showed: list[int] = []

    async def note(started: TierStarted) -> None:
        if started.tier.name == "haiku":
            closed_when_haiku_showed.append(sonnet.closed)

    timeline = await run(chain_of(sonnet, haiku, gpt), on_start=note)
    # The consumer saw Sonnet asked, and Haiku only once it had won, with its text right after.
    assert story(timeline) == [
        "asks sonnet",
        "sonnet cancelled",
        "asks haiku",
        "text Hello",
        "haiku ok",
        "done by haiku",
    ]
    done = completed(timeline)
    assert done.text == "Hello"
    lost, won = records(timeline)["sonnet"], records(timeline)["haiku"]
    assert lost.error_message == lost_hedge_note(won.tier) == "lost the hedge to Haiku"
    assert (lost.hedge, lost.error_kind, lost.attempt) == (HedgeRole.HEDGED, None, 1)
    assert (won.hedge, won.attempt) == (HedgeRole.HEDGE, 2)
    assert closed_when_haiku_showed == [1]  # Sonnet's request was closed before Haiku showed
    assert (sonnet.opened, haiku.opened, gpt.opened) == (1, 1, 0)
    assert done.degraded_reason == "Reply generated by Haiku because Sonnet was slow to answer."
    assert done.degraded_reason == degraded_reason(done.tier, list(records(timeline).values()))


async def test_the_slow_try_still_answers_if_it_speaks_first() -> None:
    sonnet, haiku = Held(), Held()

    async def release_sonnet_once_hedged() -> None:
        await haiku.asked.wait()
        sonnet.release.set()

    task = later(release_sonnet_once_hedged)
    timeline = await run(chain_of(sonnet, haiku, answering()))
    await task
    assert story(timeline) == [
        "asks sonnet",
        "haiku cancelled",  # recorded (it never showed) before Sonnet's text is shown
        "text Hello",
        "sonnet ok",
        "done by sonnet",
    ]
    hedge, answered = records(timeline)["haiku"], records(timeline)["sonnet"]
    assert (hedge.hedge, hedge.error_message) == (HedgeRole.HEDGE, "lost the hedge to Sonnet")
    assert answered.hedge is HedgeRole.HEDGED
    assert haiku.closed == 1
    assert completed(timeline).degraded_reason is None


async def test_the_budget_stops_the_eleventh_hedge_in_a_minute() -> None:
    class Watched(HedgeBudget):
        def __init__(self) -> None:
            super().__init__(share=0.1, window_s=60.0, clock=FakeClock())
            self.answers: list[bool] = []
            self.asked = asyncio.Event()

        def allows(self, tier: str) -> bool:
            answer = super().allows(tier)
            self.answers.append(answer)
            self.asked.set()
            return answer

    budget = Watched()
    sonnet, haiku = answering(), answering()
    chain = chain_of(sonnet, haiku, answering(), budget=budget)
    for _ in range(9):  # Sonnet answers; if it was a little slow, 9 turns cannot pay a hedge
        assert completed(await run(chain)).tier.name == "sonnet"
    assert haiku.opened == 0 and True not in budget.answers

    sonnet.release.clear()  # the 10th turn: Sonnet is slow, and 1 hedge in 10 turns is 10 %
    assert completed(await run(chain)).tier.name == "haiku"
    assert haiku.opened == 1 and budget.answers[-1] is True

    budget.asked.clear()  # the 11th: a second hedge would be 2 in 11, over 10 %

    async def release_sonnet_once_refused() -> None:
        await budget.asked.wait()
        sonnet.release.set()

    task = later(release_sonnet_once_refused)
    eleventh = await run(chain)
    await task
    assert story(eleventh) == ["asks sonnet", "text Hello", "sonnet ok", "done by sonnet"]
    assert budget.answers[-1] is False and haiku.opened == 1
    assert records(eleventh)["sonnet"].hedge is None


def test_the_budget_is_a_share_of_each_tiers_turns_in_a_sliding_window() -> None:
    clock = FakeClock()
    budget = HedgeBudget(share=0.1, window_s=60.0, clock=clock)
    for _ in range(9):
        budget.count_turn("sonnet")
    assert not budget.allows("sonnet")  # 1 hedge in 9 turns would be 11 %
    budget.count_turn("sonnet")
    assert budget.allows("sonnet")
    budget.spend("sonnet")
    budget.count_turn("sonnet")
    assert not budget.allows("sonnet")
    for _ in range(9):
        budget.count_turn("sonnet")
    assert budget.allows("sonnet")  # 2 in 20
    assert not budget.allows("haiku")  # each tier has its own
    clock.advance(30.0)
    for _ in range(10):
        budget.count_turn("sonnet")
    budget.spend("sonnet")
    clock.advance(30.0)  # the first 20 turns and their hedge leave the window
    budget.count_turn("sonnet")
    assert not budget.allows("sonnet")  # 1 hedge in the 11 turns left: a second is over 10 %
    for _ in range(9):
        budget.count_turn("sonnet")
    assert budget.allows("sonnet")


async def test_no_hedge_once_the_try_has_sent_text() -> None:
    sonnet = answering(first="Hel", slow_s=0.05)  # answering, then slow for 50 hedge times
    haiku = answering()
    timeline = await run(chain_of(sonnet, haiku, answering()))
    assert completed(timeline).text == "HelHello"
    assert haiku.opened == 0


async def test_no_hedge_after_text_was_shown_in_the_turn() -> None:
    broken = ProviderError(ErrorKind.CONNECTION, "connection reset")
    sonnet = answering(first="Hel", fail=broken)  # its text is shown, then it breaks off
    haiku = answering(slow_s=0.05)  # restarts the reply, slowly; it would hedge if it could
    gpt = answering()
    configs = (
        replace(SONNET_TIER, timeouts=PATIENT),
        hedging(HAIKU_TIER),
        replace(GPT_TIER, timeouts=PATIENT),
    )
    timeline = await run(chain_of(sonnet, haiku, gpt, configs=configs))
    done = completed(timeline)
    assert (done.tier.name, done.text) == ("haiku", "Hello")
    assert gpt.opened == 0


async def test_when_the_slow_try_fails_the_hedge_goes_on_alone() -> None:
    sonnet = Held(fail=ProviderError(ErrorKind.OVERLOADED, "busy", status=529))
    haiku = Held()
    starts: list[TierStarted] = []

    async def fail_sonnet_once_hedged() -> None:
        await haiku.asked.wait()
        sonnet.release.set()

    async def note(started: TierStarted) -> None:
        starts.append(started)
        if started.tier.name == "haiku":
            haiku.release.set()

    task = later(fail_sonnet_once_hedged)
    timeline = await run(chain_of(sonnet, haiku, answering()), on_start=note)
    await task
    assert story(timeline) == [
        "asks sonnet",
        "sonnet failed",
        "asks haiku",  # it takes over: shown from now on, "Answer with GPT-5.5 now" offered
        "text Hello",
        "haiku ok",
        "done by haiku",
    ]
    assert [s.attempt for s in starts] == [1, 2]
    assert starts[1].next is not None and starts[1].next.name == "openai"
    assert sonnet.opened == 1  # no same-tier retry: the hedge is already answering for it
    done = completed(timeline)
    assert (
        done.degraded_reason
        == "Reply generated by Haiku because Sonnet was unavailable (overloaded)."
    )


async def test_a_hedge_that_fails_first_only_ends_itself() -> None:
    sonnet = Held()
    haiku = answering(fail=ProviderError(ErrorKind.OVERLOADED, "busy", status=529))

    async def release_sonnet_once_the_hedge_failed() -> None:
        await haiku.ended.wait()
        sonnet.release.set()

    task = later(release_sonnet_once_the_hedge_failed)
    timeline = await run(chain_of(sonnet, haiku, answering()))
    await task
    # Haiku never showed; its record reaches the turn only with Sonnet's answer, so the page's
    # "Waiting for Sonnet…" never turns into a sentence about Haiku.
    assert story(timeline) == [
        "asks sonnet",
        "haiku failed",
        "text Hello",
        "sonnet ok",
        "done by sonnet",
    ]
    assert records(timeline)["haiku"].hedge is HedgeRole.HEDGE
    assert completed(timeline).degraded_reason is None


async def test_a_tier_whose_hedge_failed_is_not_asked_again_in_the_turn() -> None:
    sonnet = Held(fail=ProviderError(ErrorKind.QUOTA_EXHAUSTED, "no credit", status=429))
    haiku = answering(fail=ProviderError(ErrorKind.OVERLOADED, "busy", status=529))
    gpt = answering()

    async def fail_sonnet_once_the_hedge_failed() -> None:
        await haiku.ended.wait()
        sonnet.release.set()

    task = later(fail_sonnet_once_the_hedge_failed)
    timeline = await run(chain_of(sonnet, haiku, gpt))
    await task
    assert story(timeline) == [
        "asks sonnet",
        "haiku failed",
        "sonnet failed",
        "asks openai",
        "text Hello",
        "openai ok",
        "done by openai",
    ]
    assert haiku.opened == 1
    assert completed(timeline).degraded_reason == (
        "Reply generated by GPT-5.5 because Sonnet was unavailable (out of quota) "
        "and Haiku was unavailable (overloaded)."
    )


async def test_a_final_error_of_the_slow_try_ends_the_turn_and_the_hedge() -> None:
    refusal = ProviderError(ErrorKind.CONTENT_POLICY, "HTTP 400 invalid_request_error: no")
    sonnet, haiku = Held(fail=refusal), Held()

    async def refuse_once_hedged() -> None:
        await haiku.asked.wait()
        sonnet.release.set()

    task = later(refuse_once_hedged)
    timeline = await run(chain_of(sonnet, haiku, answering()))
    await task
    assert story(timeline) == ["asks sonnet", "haiku cancelled", "sonnet failed", "exhausted"]
    assert records(timeline)["haiku"].error_message == (
        "cancelled: the turn ended when Sonnet refused under its content policy"
    )
    assert haiku.closed == 1


async def test_answer_now_during_a_hedge_makes_the_hedge_the_only_try() -> None:
    sonnet, haiku, gpt = Held(), Held(), answering()
    control = TurnControl()
    starts: list[TierStarted] = []

    async def note(started: TierStarted) -> None:
        starts.append(started)
        if started.tier.name == "sonnet":

            async def skip_once_hedged() -> None:
                await haiku.asked.wait()
                assert control.skip(started.attempt) == started.next

            later(skip_once_hedged)
        else:
            haiku.release.set()

    timeline = await run(chain_of(sonnet, haiku, gpt), control, note)
    assert story(timeline) == [
        "asks sonnet",
        "sonnet abandoned",
        "asks haiku",
        "text Hello",
        "haiku ok",
        "done by haiku",
    ]
    assert starts[0].next is not None and starts[0].next.name == "haiku"
    assert starts[1].next is not None and starts[1].next.name == "openai"
    assert records(timeline)["sonnet"].error_message == "the user chose to answer with Haiku now"
    assert (sonnet.closed, haiku.opened, gpt.opened) == (1, 1, 0)
    assert completed(timeline).degraded_reason == (
        "Reply generated by Haiku because you chose not to wait for Sonnet."
    )


async def test_answer_now_twice_moves_past_the_hedge_too() -> None:
    sonnet, haiku, gpt = Held(), Held(), answering()
    control = TurnControl()

    async def skip(started: TierStarted) -> None:
        if started.tier.name == "sonnet":

            async def once_hedged() -> None:
                await haiku.asked.wait()
                control.skip(started.attempt)

            later(once_hedged)
        elif started.tier.name == "haiku":
            assert control.skip(started.attempt) == started.next

    timeline = await run(chain_of(sonnet, haiku, gpt), control, skip)
    assert story(timeline) == [
        "asks sonnet",
        "sonnet abandoned",
        "asks haiku",
        "haiku abandoned",
        "asks openai",
        "text Hello",
        "openai ok",
        "done by openai",
    ]
    assert (sonnet.closed, haiku.closed) == (1, 1)


async def test_answer_now_before_the_hedge_starts_is_a_plain_skip() -> None:
    sonnet, haiku = Held(), answering()
    control = TurnControl()

    async def skip_at_once(started: TierStarted) -> None:
        if started.tier.name == "sonnet":
            assert control.skip(started.attempt) is not None

    chain = chain_of(sonnet, haiku, answering(), budget=HedgeBudget(share=0.0))
    timeline = await run(chain, control, skip_at_once)
    assert story(timeline) == [
        "asks sonnet",
        "sonnet abandoned",
        "asks haiku",
        "text Hello",
        "haiku ok",
        "done by haiku",
    ]
    assert all(r.hedge is None for r in records(timeline).values())


async def test_stop_during_a_hedge_closes_and_records_both_tries() -> None:
    sonnet, haiku = Held(), Held()
    timeline: Timeline = []
    events = chain_of(sonnet, haiku, answering()).run(REQUEST, on_attempt=timeline.append)
    assert isinstance(await anext(events), TierStarted)
    reading = asyncio.get_running_loop().create_task(anext(events))
    await asyncio.wait_for(haiku.asked.wait(), 10)
    reading.cancel()  # what Stop does to the turn's task
    await asyncio.wait([reading])
    await events.aclose()
    assert sorted((r.tier.name, r.outcome) for r in records(timeline).values()) == [
        ("haiku", AttemptOutcome.CANCELLED),
        ("sonnet", AttemptOutcome.CANCELLED),
    ]
    assert len(timeline) == 2  # one record each
    assert (sonnet.closed, haiku.closed) == (1, 1)


async def test_stop_while_the_loser_is_being_closed_still_records_each_try_once() -> None:
    sonnet, haiku = Held(closing=asyncio.Event()), answering()
    timeline: Timeline = []
    events = chain_of(sonnet, haiku, answering()).run(REQUEST, on_attempt=timeline.append)
    assert isinstance(await anext(events), TierStarted)
    reading = asyncio.get_running_loop().create_task(anext(events))
    await asyncio.wait_for(sonnet.closing_begun.wait(), 10)  # Haiku won; Sonnet is closing
    reading.cancel()  # Stop, right then
    assert sonnet.closing is not None
    sonnet.closing.set()
    await asyncio.wait([reading])
    await events.aclose()
    assert [(r.tier.name, r.outcome, r.error_message) for r in records(timeline).values()] == [
        ("sonnet", AttemptOutcome.CANCELLED, "lost the hedge to Haiku"),
        ("haiku", AttemptOutcome.CANCELLED, None),
    ]
    assert len(timeline) == 2  # one record each, none twice
    assert (sonnet.closed, haiku.closed) == (1, 1)


async def test_a_hedge_respects_an_open_breaker() -> None:
    board = Breakers({t.name: t.breaker for t in (SONNET_TIER, HAIKU_TIER, GPT_TIER)})
    quota = AttemptRecord(
        tier=Tier.build(HAIKU_TIER, 1, answering()).info,
        attempt=1,
        started_at=time.time(),
        elapsed_s=0.1,
        ttft_s=None,
        outcome=AttemptOutcome.FAILED,
        error_kind=ErrorKind.QUOTA_EXHAUSTED,
    )
    await board.report("haiku", quota, probe=False)  # out of quota: Haiku's breaker opens at once
    assert (await board.states())["haiku"].state is BreakerState.OPEN
    sonnet, haiku, gpt = Held(), answering(), answering()
    timeline = await run(chain_of(sonnet, haiku, gpt, breakers=board))
    assert story(timeline) == [
        "asks sonnet",
        "sonnet cancelled",
        "asks openai",
        "text Hello",
        "openai ok",
        "done by openai",
    ]
    assert haiku.opened == 0
    assert records(timeline)["sonnet"].error_message == "lost the hedge to GPT-5.5"


async def watched(chain: Chain) -> list[str]:
    """What a watcher of the live turn (the page) can read after each step of the turn.

    Updates published with nothing awaited between them reach a watcher together (it wakes only
    when the turn's task waits), so the status is read once per such batch: a ticker task that
    counts the loop's turns tells the batches apart."""
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0)
            ticks += 1

    ticker = asyncio.get_running_loop().create_task(tick())
    tagged: list[tuple[int, TierStarted | TextDelta | AttemptRecord]] = []
    try:
        async with contextlib.aclosing(
            chain.run(REQUEST, on_attempt=lambda r: tagged.append((ticks, r)))
        ) as events:
            async for event in events:
                if isinstance(event, TierStarted | TextDelta):
                    tagged.append((ticks, event))
    finally:
        ticker.cancel()
    live, seen = LiveTurn("turn", "chat"), []
    for index, (tick, update) in enumerate(tagged):
        live.apply(update)
        if index + 1 < len(tagged) and tagged[index + 1][0] == tick:
            continue  # the same batch goes on
        waiting = live.waiting
        if waiting is not None:
            status = waiting_status(waiting.tier, live.last_attempt, retry=waiting.retry)
        else:
            assert live.tier is not None
            status = f"{live.tier.label}: {live.text} ({live.reason})"
        if not seen or seen[-1] != status:
            seen.append(status)
    return seen


async def test_while_both_run_the_page_waits_for_the_first_and_then_shows_the_winner() -> None:
    sonnet, haiku = Held(), answering()
    assert await asyncio.wait_for(watched(chain_of(sonnet, haiku, answering())), 10) == [
        "Waiting for Sonnet…",
        "Haiku: Hello (Reply generated by Haiku because Sonnet was slow to answer.)",
    ]


async def test_a_failed_hedge_never_shows_on_the_page() -> None:
    sonnet = Held()
    haiku = answering(fail=ProviderError(ErrorKind.OVERLOADED, "busy", status=529))

    async def release_sonnet_once_the_hedge_failed() -> None:
        await haiku.ended.wait()
        sonnet.release.set()

    task = later(release_sonnet_once_the_hedge_failed)
    seen = await asyncio.wait_for(watched(chain_of(sonnet, haiku, answering())), 10)
    await task
    assert seen == ["Waiting for Sonnet…", "Sonnet: Hello (None)"]
