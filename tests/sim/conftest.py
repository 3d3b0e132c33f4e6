from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import anthropic
import openai
import pytest

from web.sim.server import ModelProfile, SimServer

SONNET = "claude-sonnet-4-6"
HAIKU = "claude-haiku-4-5-20251001"
GPT = "gpt-5.5"
FAST = ModelProfile(first_token_s=0.0, tokens_per_s=5000.0, reply_tokens=30, context_window=1000)

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def bounded(seconds: float) -> Callable[[F], F]:
    """Fail the test if it takes longer than `seconds` (no plugin: asyncio.wait_for)."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            return await asyncio.wait_for(fn(*args, **kwargs), seconds)

        return wrapper  # type: ignore[return-value]

    return decorate


async def eventually(condition: Callable[[], bool], within: float = 1.0) -> bool:
    """Poll `condition` every 10 ms for up to `within` seconds; its last value."""
    for _ in range(int(within / 0.01)):
        if condition():
            return True
        await asyncio.sleep(0.01)
    return condition()


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    server = SimServer(default_profile=FAST)
    await server.start()
    try:
        yield server
    finally:
        await asyncio.wait_for(server.stop(), 5)


_clients: list[anthropic.AsyncAnthropic | openai.AsyncOpenAI] = []


@pytest.fixture(autouse=True)
async def _close_clients() -> AsyncIterator[None]:
    """Close the SDK clients a test made while its event loop still runs."""
    yield
    while _clients:
        await _clients.pop().close()


def claude(sim: SimServer, timeout: float = 2.0) -> anthropic.AsyncAnthropic:
    client = anthropic.AsyncAnthropic(
        base_url=f"{sim.url}/anthropic", api_key="test-key", max_retries=0, timeout=timeout
    )
    _clients.append(client)
    return client


def gpt(sim: SimServer, timeout: float = 2.0) -> openai.AsyncOpenAI:
    client = openai.AsyncOpenAI(
        base_url=f"{sim.url}/openai/v1", api_key="test-key", max_retries=0, timeout=timeout
    )
    _clients.append(client)
    return client
