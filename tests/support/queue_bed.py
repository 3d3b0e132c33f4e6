"""A queue bed: the simulator (its clock stepped by the test), the chain and runner on it with a
[deferral] table, a database, and workers whose clock is the same fake clock.

Nothing here sleeps: a worker looks at the queue when the test calls ``run_once``, the batch ends
when the test advances the clock past its ``batch_delay_s``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anthropic
import pytest
from sim.clock import FakeClock
from sqlalchemy import select

from web.app import breakers_for, deferral_worker
from web.chain import Chain
from web.db.models import Attempt, DeferredJob, Message, Turn
from web.db.session import Factory, read_scope
from web.deferral import Deferral
from web.deferral_worker import DeferralWorker
from web.providers.base import ChatMessage, ChatRequest
from web.runner import TurnJob, TurnRunner
from web.settings import Settings
from web.sim.server import ModelProfile, SimServer

from support.database import add_user_message, start_turn

SONNET = "claude-sonnet-4-6"
BATCH_DELAY_S = 60.0
PROFILE = ModelProfile(
    first_token_s=0.0,
    tokens_per_s=5000.0,
    reply_tokens=20,
    context_window=200_000,
    batch_delay_s=BATCH_DELAY_S,
)
TIER = """
[[tiers]]
name = "{name}"
provider = "{provider}"
model = "{model}"
label = "{label}"
badge = "{badge}"
api_key_env = "{key}"
context_window = 200000
timeouts = {{ connect_s = 2.0, first_token_s = 5.0, idle_s = 5.0, total_s = 30.0 }}
breaker = {{ min_calls = 1000000, open_s = 0.001, max_open_s = 0.001 }}
"""
CHAIN = (
    TIER.format(
        name="sonnet",
        provider="anthropic",
        model=SONNET,
        label="Sonnet",
        badge="",
        key="ANTHROPIC_API_KEY",
    )
    + TIER.format(
        name="haiku",
        provider="anthropic",
        model="claude-haiku-4-5-20251001",
        label="Haiku",
        badge="fast mode (smaller model)",
        key="ANTHROPIC_API_KEY",
    )
    + TIER.format(
        name="openai",
        provider="openai",
        model="gpt-5.5",
        label="GPT-5.5",
        badge="fallback provider",
        key="OPENAI_API_KEY",
    )
)
DEFERRAL = """
[deferral]
backend = "{backend}"
expire_s = {expire_s}
poll_s = 5
max_poll_s = 40
"""


@dataclass
class Bed:
    sim: SimServer
    clock: FakeClock
    settings: Settings
    sessions: Factory
    chain: Chain
    deferral: Deferral
    runner: TurnRunner
    workers: list[DeferralWorker] = field(default_factory=list)
    offset: float = 0.0

    def unix(self) -> float:
        """The workers' Unix time: the simulator's fake clock plus an offset that keeps it at or
        after the real time a job was queued at (the runner stamps it with the real clock); it
        moves only when the test moves it."""
        return self.clock.now + self.offset

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.unix(), UTC)

    def worker(self, name: str = "w1") -> DeferralWorker:
        worker = deferral_worker(self.settings, self.sessions, self.chain, self.deferral)
        worker.name = name
        worker._clock = self.unix
        worker._rng = lambda: 1.0
        self.workers.append(worker)
        return worker

    def all_down(self) -> None:
        """Every synchronous tier overloaded; the Message Batches endpoints untouched."""
        for model in (SONNET, "claude-haiku-4-5-20251001"):
            self.sim.registry.add({"model": model, "kind": "status", "status": 529})
        self.sim.registry.add({"model": "gpt-5.5", "kind": "status", "status": 503})

    async def ask(self, prompt: str = "What is an understudy?") -> str:
        """A message whose turn runs to its end (queued, when every tier is down)."""
        conversation_id, message_id = await add_user_message(self.sessions, prompt)
        turn_id, _ = await start_turn(
            self.sessions, conversation_id=conversation_id, user_message_id=message_id
        )
        request = ChatRequest(messages=(ChatMessage(role="user", content=prompt),))
        live = self.runner.start(TurnJob(turn_id, conversation_id, request))
        subscription = self.runner.live_turns.subscribe(turn_id)
        assert subscription is not None
        async with asyncio.timeout(20):
            async for _ in subscription.updates:
                pass
        assert live.finished
        self.offset = max(self.offset, time.time() - self.clock.now)
        return turn_id

    async def turn(self, turn_id: str) -> Turn:
        async with read_scope(self.sessions) as session:
            turn = await session.get(Turn, turn_id)
            assert turn is not None
            return turn

    async def job(self, turn_id: str) -> DeferredJob:
        async with read_scope(self.sessions) as session:
            job = await session.get(DeferredJob, turn_id)
            assert job is not None
            return job

    async def reply(self, turn_id: str) -> str:
        async with read_scope(self.sessions) as session:
            text = await session.scalar(select(Message.content).where(Message.turn_id == turn_id))
            return text or ""

    async def attempts(self, turn_id: str) -> list[Attempt]:
        async with read_scope(self.sessions) as session:
            rows = await session.scalars(
                select(Attempt).where(Attempt.turn_id == turn_id).order_by(Attempt.seq)
            )
            return list(rows)

    async def batch_creates(self) -> int:
        """How many batches the simulator holds (its list endpoint, through the SDK)."""
        client = anthropic.AsyncAnthropic(
            base_url=f"{self.sim.url}/anthropic", api_key="test-key", max_retries=0
        )
        try:
            page = await client.messages.batches.list(limit=100)
            return len(page.data)
        finally:
            await client.close()


MakeBed = Callable[..., "asyncio.Future[Bed]"]


@pytest.fixture
async def make_bed(tmp_path: Path, database_url: str) -> AsyncIterator[Callable[..., Any]]:
    beds: list[Bed] = []
    sims: list[SimServer] = []

    async def make(backend: str = "anthropic_batch", expire_s: float = 86400) -> Bed:
        clock = FakeClock()
        sim = SimServer(default_profile=PROFILE, profiles={}, clock=clock)
        await sim.start()
        sims.append(sim)
        chain_file = tmp_path / f"chain-{len(beds)}.toml"
        chain_file.write_text(CHAIN + DEFERRAL.format(backend=backend, expire_s=expire_s))
        settings = Settings.from_env(
            {
                "UNDERSTUDY_CHAIN": str(chain_file),
                "UNDERSTUDY_SIM_URL": sim.url,
                "UNDERSTUDY_DATA_DIR": str(tmp_path / "data"),
                "UNDERSTUDY_DATABASE_URL": database_url,
            }
        )
        from web.db.session import make_engine, make_sessionmaker

        engine = make_engine(database_url)
        sessions = make_sessionmaker(engine)
        chain = Chain.from_settings(settings, breakers_for(settings))
        deferral = Deferral.from_settings(settings)
        assert deferral is not None
        runner = TurnRunner(chain, sessions, deadline_s=30.0, deferral=deferral)
        bed = Bed(sim, clock, settings, sessions, chain, deferral, runner)
        bed._engine = engine  # type: ignore[attr-defined]
        beds.append(bed)
        return bed

    yield make
    for bed in beds:
        for worker in bed.workers:
            await worker.close()
        await bed.runner.shutdown()
        await bed.chain.aclose()
        await bed._engine.dispose()  # type: ignore[attr-defined]
    for sim in sims:
        await sim.stop()
