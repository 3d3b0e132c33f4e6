"""Engine fixtures: a fast simulator on loopback, chains of real providers pointed at it, and a
helper that runs one turn and checks the invariants every event stream must keep."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from web.chain import Chain
from web.events import (
    AttemptRecord,
    ChainEvent,
    Completed,
    Exhausted,
    TextDelta,
    TierStarted,
)
from web.providers import PROVIDERS
from web.providers.base import ChatMessage, ChatRequest
from web.settings import TierConfig, Timeouts
from web.sim import sim_base_url
from web.sim.replies import reply_text
from web.sim.server import ModelProfile, SimServer
from web.status import AttemptOutcome, HedgeRole
from web.tiers import Tier

SONNET = "claude-sonnet-4-6"
HAIKU = "claude-haiku-4-5-20251001"
GPT = "gpt-5.5"
GEMINI = "gemini-3.5-flash"
REPLY_TOKENS = 30
FAST = ModelProfile(
    first_token_s=0.0, tokens_per_s=5000.0, reply_tokens=REPLY_TOKENS, context_window=200_000
)
SHORT = Timeouts(connect_s=1.0, first_token_s=0.5, idle_s=0.5, total_s=5.0)
"""For tests of a timeout (a hang, a stall, a slow first token): pass it explicitly."""
PATIENT = Timeouts(connect_s=10.0, first_token_s=10.0, idle_s=10.0, total_s=30.0)
"""The tiers' default here: where no timeout is the point, a loaded machine can hold a first
token past SHORT's half second, and a test must not need the machine to be fast."""
PROMPT = "How do fallback chains work?"


def tier(
    name: str,
    provider: str,
    model: str,
    label: str,
    badge: str,
    key_env: str,
    window: int | None = 200_000,
    timeouts: Timeouts = PATIENT,
) -> TierConfig:
    return TierConfig(
        name=name,
        provider=provider,
        model=model,
        label=label,
        badge=badge,
        api_key_env=key_env,
        context_window=window,
        timeouts=timeouts,
    )


SONNET_TIER = tier("sonnet", "anthropic", SONNET, "Sonnet", "", "ANTHROPIC_API_KEY")
HAIKU_TIER = tier(
    "haiku", "anthropic", HAIKU, "Haiku", "fast mode (smaller model)", "ANTHROPIC_API_KEY"
)
GPT_TIER = tier(
    "openai", "openai", GPT, "GPT-5.5", "fallback provider", "OPENAI_API_KEY", window=400_000
)
GEMINI_TIER = tier(
    "gemini", "gemini", GEMINI, "Gemini", "fallback provider", "GEMINI_API_KEY", window=1_048_576
)
DEFAULT_TIERS = (SONNET_TIER, HAIKU_TIER, GPT_TIER)


class Upstream:
    """The simulator, driven through its HTTP control API as a drill would."""

    def __init__(self, sim: SimServer, client: httpx.AsyncClient) -> None:
        self.sim = sim
        self.url = sim.url
        self._client = client

    async def fault(self, model: str, kind: str, count: int | None = None, **params: Any) -> None:
        body = {"model": model, "kind": kind, "count": count, **params}
        response = await self._client.post(f"{self.url}/faults", json=body)
        assert response.status_code == 201, response.text

    async def requests(self) -> dict[str, int]:
        """How many requests each model got."""
        response = await self._client.get(f"{self.url}/requests")
        counts: dict[str, int] = {}
        for entry in response.json():
            counts[entry["model"]] = counts.get(entry["model"], 0) + 1
        return counts

    def chain(
        self,
        configs: Sequence[TierConfig] = DEFAULT_TIERS,
        *,
        deadline_s: float = 20.0,
        rng: random.Random | None = None,
        **kwargs: Any,
    ) -> Chain:
        tiers = [
            Tier.build(
                config,
                index,
                PROVIDERS[config.provider](
                    "test-key", sim_base_url(self.url, config.provider), config.timeouts
                ),
            )
            for index, config in enumerate(configs)
        ]
        return Chain(tiers, deadline_s=deadline_s, rng=rng or random.Random(7), **kwargs)


@contextlib.asynccontextmanager
async def running_upstream(clock: Callable[[], float] | None = None) -> AsyncIterator[Upstream]:
    """A fast simulator on loopback and a client for its control API; with ``clock``, its faults'
    time moves only when that clock does."""
    sim = SimServer(default_profile=FAST, clock=clock)
    await sim.start()
    try:
        async with httpx.AsyncClient(timeout=5.0) as client:
            yield Upstream(sim, client)
    finally:
        await asyncio.wait_for(sim.stop(), 5)


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    async with running_upstream() as running:
        yield running


@dataclass
class Turn:
    timeline: list[ChainEvent | AttemptRecord]
    """The events and, where each attempt ended, its record (from on_attempt), in order."""
    elapsed: float

    @property
    def events(self) -> list[ChainEvent]:
        return [e for e in self.timeline if not isinstance(e, AttemptRecord)]

    @property
    def outcome(self) -> Completed | Exhausted:
        last = self.events[-1]
        assert isinstance(last, Completed | Exhausted)
        return last

    @property
    def completed(self) -> Completed:
        assert isinstance(self.outcome, Completed), self.outcome
        return self.outcome

    @property
    def exhausted(self) -> Exhausted:
        assert isinstance(self.outcome, Exhausted), self.outcome
        return self.outcome

    @property
    def attempts(self) -> tuple[AttemptRecord, ...]:
        return tuple(e for e in self.timeline if isinstance(e, AttemptRecord))

    @property
    def starts(self) -> list[TierStarted]:
        return [e for e in self.events if isinstance(e, TierStarted)]

    @property
    def failures(self) -> list[AttemptRecord]:
        return [r for r in self.attempts if r.outcome is AttemptOutcome.FAILED]

    def attempts_per_model(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for record in self.attempts:
            counts[record.tier.model] = counts.get(record.tier.model, 0) + 1
        return counts


async def run_turn(
    chain: Chain, prompt: str = PROMPT, limit_s: float = 15.0, *, primary_only: bool = False
) -> Turn:
    request = ChatRequest(messages=(ChatMessage("user", prompt),))
    started = time.monotonic()
    timeline: list[ChainEvent | AttemptRecord] = []

    async def consume() -> None:
        events = chain.run(request, on_attempt=timeline.append, primary_only=primary_only)
        async for event in events:
            timeline.append(event)

    await asyncio.wait_for(consume(), limit_s)
    turn = Turn(timeline, time.monotonic() - started)
    check_invariants(turn, prompt)
    return turn


def check_invariants(turn: Turn, prompt: str = PROMPT) -> None:
    """What every event stream must keep, whatever went wrong upstream."""
    events = turn.events
    if not isinstance(events[0], TierStarted):  # no tier could be tried: each one was skipped
        assert isinstance(events[0], Exhausted) and len(events) == 1, events
        assert all(r.outcome is AttemptOutcome.SKIPPED for r in turn.attempts), turn.attempts
        return
    ends = [e for e in events if isinstance(e, Completed | Exhausted)]
    assert ends == [events[-1]], "exactly one Completed or Exhausted, and last"
    shown: list[str] = []
    must_restart = False
    for event in turn.timeline:
        if isinstance(event, TierStarted):
            assert event.restart == must_restart
            must_restart = False
            shown = []
        elif isinstance(event, TextDelta):
            shown.append(event.text)
        elif isinstance(event, AttemptRecord) and event.outcome is AttemptOutcome.FAILED:
            assert event.after_text == bool(shown)
            must_restart = event.after_text
    # With a hedge two tries run at once and may end in either order.
    numbers = sorted(r.attempt for r in turn.attempts)
    assert numbers == list(range(1, len(numbers) + 1))
    starts = [e.attempt for e in events if isinstance(e, TierStarted)]
    tried = [r for r in turn.attempts if r.outcome is not AttemptOutcome.SKIPPED]
    unshown = [r for r in tried if r.attempt not in starts]
    # A skipped tier (breaker open) is not started, and a hedge is shown only if it won or
    # took over; every other try is shown, once, in order.
    assert all(r.hedge is HedgeRole.HEDGE for r in unshown), unshown
    assert starts == sorted(r.attempt for r in tried if r not in unshown)
    passed_over = (AttemptOutcome.FAILED, AttemptOutcome.SKIPPED)
    for record in turn.attempts:
        if record.outcome is AttemptOutcome.CANCELLED:
            assert record.hedge is not None, "only a hedge's loser is cancelled in a whole turn"
    if isinstance(turn.outcome, Completed):
        done = turn.outcome
        # Never a partial reply: exactly the model's whole deterministic reply, as streamed.
        assert done.text == reply_text(done.tier.model, prompt, REPLY_TOKENS)
        assert "".join(shown) == done.text
        assert turn.attempts[-1].outcome is AttemptOutcome.OK
        assert turn.attempts[-1].tier == done.tier
        assert all(r.outcome in passed_over or r.hedge is not None for r in turn.attempts[:-1])
    else:
        assert all(r.outcome in passed_over or r.hedge is not None for r in turn.attempts)
