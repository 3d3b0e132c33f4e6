"""The two adapters on their own: what a stream yields, what each failure is called, and that a
consumer who stops (or is cancelled) closes the upstream connection at once."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from web.providers.anthropic_provider import AnthropicProvider
from web.providers.base import (
    ChatMessage,
    ChatRequest,
    ErrorKind,
    Provider,
    ProviderError,
    StreamItem,
    TextDelta,
    Usage,
)
from web.providers.openai_provider import OpenAIProvider
from web.settings import Timeouts
from web.sim.replies import reply_text

from support.engine import (
    GPT,
    GPT_TIER,
    PATIENT,
    REPLY_TOKENS,
    SHORT,
    SONNET,
    SONNET_TIER,
    Upstream,
    run_turn,
)
from support.wall import (
    ANTHROPIC_START,
    OPENAI_DONE,
    OPENAI_USAGE,
    Wall,
    anthropic_end,
    anthropic_text,
    openai_chunk,
)

REQUEST = ChatRequest(
    messages=(
        ChatMessage("user", "first question"),
        ChatMessage("assistant", "first answer"),
        ChatMessage("user", "and the second one?"),
    ),
    system="Be brief.",
)


# PATIENT: their tests are of replies and faults, never of a read backstop, and a loaded machine
# may hold a healthy first token past SHORT's half second.
def anthropic_at(url: str) -> AnthropicProvider:
    return AnthropicProvider(api_key="test-key", base_url=f"{url}/anthropic", timeouts=PATIENT)


def openai_at(url: str) -> OpenAIProvider:
    return OpenAIProvider(api_key="test-key", base_url=f"{url}/openai/v1", timeouts=PATIENT)


MAKERS = {"anthropic": (anthropic_at, SONNET), "openai": (openai_at, GPT)}


async def drain(provider: Provider, model: str) -> list[StreamItem]:
    return [item async for item in provider.stream(REQUEST, model)]


async def failure(provider: Provider, model: str) -> tuple[ProviderError, list[StreamItem]]:
    items: list[StreamItem] = []
    with pytest.raises(ProviderError) as caught:
        async for item in provider.stream(REQUEST, model):
            items.append(item)
    return caught.value, items


@pytest.fixture(params=sorted(MAKERS))
async def sim_provider(
    request: pytest.FixtureRequest, upstream: Upstream
) -> AsyncIterator[tuple[Provider, str]]:
    make, model = MAKERS[request.param]
    provider = make(upstream.url)
    yield provider, model
    await provider.aclose()


async def test_text_then_one_usage(sim_provider: tuple[Provider, str]) -> None:
    provider, model = sim_provider
    items = await drain(provider, model)
    *texts, usage = items
    assert all(isinstance(t, TextDelta) for t in texts)
    assert "".join(t.text for t in texts if isinstance(t, TextDelta)) == reply_text(
        model, "and the second one?", REPLY_TOKENS
    )
    assert isinstance(usage, Usage)
    assert usage.output_tokens is not None and usage.output_tokens >= len(texts) - 1
    assert usage.input_tokens is not None and usage.input_tokens >= 10
    assert usage.request_id and usage.request_id.startswith("req_")


async def test_status_error_carries_status_request_id_and_retry_after(
    sim_provider: tuple[Provider, str], upstream: Upstream
) -> None:
    provider, model = sim_provider
    await upstream.fault(model, "status", status=429, retry_after=1.5)
    error, items = await failure(provider, model)
    assert items == []
    assert error.kind is ErrorKind.RATE_LIMITED
    assert (error.status, error.retry_after) == (429, 1.5)
    assert error.request_id and error.request_id.startswith("req_")


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (408, ErrorKind.SERVER_ERROR),
        (409, ErrorKind.SERVER_ERROR),
        (502, ErrorKind.SERVER_ERROR),
        (504, ErrorKind.TIMEOUT),
        (422, ErrorKind.BAD_REQUEST),
    ],
)
async def test_other_statuses(upstream: Upstream, status: int, kind: ErrorKind) -> None:
    provider = anthropic_at(upstream.url)
    await upstream.fault(SONNET, "status", status=status)
    error, _ = await failure(provider, SONNET)
    await provider.aclose()
    assert (error.kind, error.status) == (kind, status)


async def test_openai_context_length_and_quota_codes(upstream: Upstream) -> None:
    provider = openai_at(upstream.url)
    await upstream.fault(GPT, "status", count=1, status=400, code="context_length_exceeded")
    await upstream.fault(GPT, "status", count=1, status=429, code="insufficient_quota")
    first, _ = await failure(provider, GPT)
    second, _ = await failure(provider, GPT)
    await provider.aclose()
    assert first.kind is ErrorKind.CONTEXT_TOO_LONG
    assert second.kind is ErrorKind.QUOTA_EXHAUSTED


async def test_anthropic_in_stream_error_is_classified_by_its_type(upstream: Upstream) -> None:
    provider = anthropic_at(upstream.url)
    await upstream.fault(SONNET, "error_event", after_tokens=2, error_type="rate_limit_error")
    error, items = await failure(provider, SONNET)
    await provider.aclose()
    assert error.kind is ErrorKind.RATE_LIMITED
    assert error.status is None  # it came inside an HTTP 200 stream
    assert error.request_id and error.request_id.startswith("req_")
    assert len(items) == 2


async def test_connection_refused(sim_provider: tuple[Provider, str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider, model = sim_provider
    make, _ = MAKERS[provider.name]
    closed = make(f"http://127.0.0.1:{port}")
    error, _ = await failure(closed, model)
    await closed.aclose()
    assert error.kind is ErrorKind.CONNECTION


@pytest.mark.parametrize(
    ("stop_reason", "kind"),
    [
        ("refusal", ErrorKind.CONTENT_POLICY),
        ("model_context_window_exceeded", ErrorKind.CONTEXT_TOO_LONG),
    ],
)
async def test_anthropic_stop_reasons_that_are_failures(stop_reason: str, kind: ErrorKind) -> None:
    body = ANTHROPIC_START + anthropic_text("Sorry") + anthropic_end(stop_reason)
    async with Wall(body, end=True) as wall:
        provider = AnthropicProvider(api_key="k", base_url=wall.url, timeouts=SHORT)
        error, items = await failure(provider, SONNET)
        await provider.aclose()
    assert error.kind is kind
    assert items == [TextDelta("Sorry")]


async def test_anthropic_stop_reason_without_message_stop_is_truncated() -> None:
    body = ANTHROPIC_START + anthropic_text("Hello") + anthropic_end(stop=False)
    async with Wall(body, end=True) as wall:
        provider = AnthropicProvider(api_key="k", base_url=wall.url, timeouts=SHORT)
        error, _ = await failure(provider, SONNET)
        await provider.aclose()
    assert error.kind is ErrorKind.TRUNCATED


async def test_anthropic_event_that_is_not_utf8_is_malformed() -> None:
    body = ANTHROPIC_START + b'event: content_block_delta\ndata: {"text": "\xff\xfe"}\n\n'
    async with Wall(body, end=True) as wall:
        provider = AnthropicProvider(api_key="k", base_url=wall.url, timeouts=SHORT)
        error, _ = await failure(provider, SONNET)
        await provider.aclose()
    assert error.kind is ErrorKind.MALFORMED


async def test_anthropic_text_with_unicode_line_separators_survives() -> None:
    text = "line\u2028separated\x1cand\u0085more"
    body = ANTHROPIC_START + anthropic_text(text) + anthropic_end()
    async with Wall(body, end=True) as wall:
        provider = AnthropicProvider(api_key="k", base_url=wall.url, timeouts=SHORT)
        items = await drain(provider, SONNET)
        await provider.aclose()
    assert items[0] == TextDelta(text)


OPENAI_WHOLE = (
    openai_chunk({"role": "assistant", "content": ""})
    + openai_chunk({"content": "Hello"})
    + openai_chunk({}, "stop")
    + OPENAI_USAGE
)
"""A whole OpenAI reply without its [DONE]."""
SLOW_READS = Timeouts(connect_s=1.0, first_token_s=30.0, idle_s=30.0, total_s=60.0)
"""The read backstop far away: only the grace can end a silent stream quickly."""


@pytest.mark.parametrize("end", [True, False], ids=["clean-end", "held-open"])
async def test_openai_finish_reason_and_usage_without_done_is_a_whole_reply(end: bool) -> None:
    async with Wall(OPENAI_WHOLE, end=end) as wall:
        provider = OpenAIProvider(
            api_key="k", base_url=wall.url, timeouts=SLOW_READS, done_grace_s=0.05
        )
        items = await asyncio.wait_for(drain(provider, GPT), 5)  # not the 30 s backstop
        if not end:
            await asyncio.wait_for(wall.hung_up.wait(), 1.0)  # and the stream was closed
        await provider.aclose()
    assert items == [TextDelta("Hello"), Usage(4, 2, "req_wall", stop_reason="stop")]


async def test_openai_finish_reason_without_usage_or_done_is_truncated() -> None:
    body = openai_chunk({"content": "Hello"}) + openai_chunk({}, "stop")
    async with Wall(body, end=True) as wall:
        provider = OpenAIProvider(api_key="k", base_url=wall.url, timeouts=SHORT)
        error, items = await failure(provider, GPT)
        await provider.aclose()
    assert error.kind is ErrorKind.TRUNCATED
    assert "[DONE]" in error.message
    assert items == [TextDelta("Hello")]


async def test_openai_whole_reply_held_open_by_the_simulator(upstream: Upstream) -> None:
    await upstream.fault(GPT, "no_terminator", tail="keep", hold_s=30)
    provider = OpenAIProvider(
        api_key="k", base_url=f"{upstream.url}/openai/v1", timeouts=SLOW_READS, done_grace_s=0.05
    )
    items = await asyncio.wait_for(drain(provider, GPT), 5)
    await provider.aclose()
    *texts, usage = items
    assert "".join(t.text for t in texts if isinstance(t, TextDelta)) == reply_text(
        GPT, "and the second one?", REPLY_TOKENS
    )
    assert isinstance(usage, Usage) and usage.stop_reason == "stop"


async def test_openai_without_the_tail_is_still_truncated(upstream: Upstream) -> None:
    await upstream.fault(GPT, "no_terminator")  # no finish_reason, no usage, no [DONE]
    provider = OpenAIProvider(
        api_key="k", base_url=f"{upstream.url}/openai/v1", timeouts=SHORT, done_grace_s=0.05
    )
    error, _ = await failure(provider, GPT)
    await provider.aclose()
    assert error.kind is ErrorKind.TRUNCATED


async def test_a_whole_reply_held_open_completes_on_its_tier_in_the_chain(
    upstream: Upstream,
) -> None:
    await upstream.fault(GPT, "no_terminator", tail="keep", hold_s=30)
    chain = upstream.chain((GPT_TIER, SONNET_TIER))
    try:
        turn = await run_turn(chain, limit_s=10)  # the stream is held open for 30 s
    finally:
        await chain.aclose()
    assert turn.completed.tier.model == GPT and turn.completed.degraded_reason is None
    assert turn.completed.stop_reason == "stop"
    assert await upstream.requests() == {GPT: 1}


def test_the_grace_stays_under_the_idle_timeout() -> None:
    assert OpenAIProvider(api_key="k", timeouts=SLOW_READS).done_grace_s == 1.0
    assert OpenAIProvider(api_key="k", timeouts=SHORT).done_grace_s == 0.25


async def test_openai_content_filter_finish_reason() -> None:
    body = (
        openai_chunk({"content": "Hel"})
        + openai_chunk({}, "content_filter")
        + OPENAI_USAGE
        + OPENAI_DONE
    )
    async with Wall(body, end=True) as wall:
        provider = OpenAIProvider(api_key="k", base_url=wall.url, timeouts=SHORT)
        error, _ = await failure(provider, GPT)
        await provider.aclose()
    assert error.kind is ErrorKind.CONTENT_POLICY


async def test_openai_complete_stream_from_the_wall() -> None:
    body = (
        openai_chunk({"role": "assistant", "content": ""})
        + openai_chunk({"content": "Hi"})
        + openai_chunk({}, "stop")
        + OPENAI_USAGE
        + OPENAI_DONE
    )
    async with Wall(body, end=True) as wall:
        provider = OpenAIProvider(api_key="k", base_url=wall.url, timeouts=SHORT)
        items = await drain(provider, GPT)
        await provider.aclose()
    assert items == [TextDelta("Hi"), Usage(4, 2, "req_wall", stop_reason="stop")]


OPEN_BODIES = {
    "anthropic": ANTHROPIC_START + anthropic_text("one") + anthropic_text(" two"),
    "openai": openai_chunk({"content": "one"}) + openai_chunk({"content": " two"}),
}


def wall_provider(name: str, url: str) -> Provider:
    if name == "anthropic":
        return AnthropicProvider(api_key="k", base_url=url, timeouts=SHORT)
    return OpenAIProvider(api_key="k", base_url=url, timeouts=SHORT)


@pytest.mark.parametrize("name", sorted(OPEN_BODIES))
async def test_closing_the_stream_closes_the_connection(name: str) -> None:
    async with Wall(OPEN_BODIES[name]) as wall:
        provider = wall_provider(name, wall.url)
        stream = provider.stream(REQUEST, "m")
        assert await anext(stream) == TextDelta("one")
        await stream.aclose()  # type: ignore[attr-defined]
        await asyncio.wait_for(wall.hung_up.wait(), 1.0)
        await provider.aclose()


@pytest.mark.parametrize("name", sorted(OPEN_BODIES))
async def test_cancelling_the_consumer_closes_the_connection(name: str) -> None:
    async with Wall(OPEN_BODIES[name]) as wall:
        provider = wall_provider(name, wall.url)
        two_read = asyncio.Event()

        async def consume() -> None:
            count = 0
            async for _ in provider.stream(REQUEST, "m"):
                count += 1
                if count == 2:
                    two_read.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(two_read.wait(), 1.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(wall.hung_up.wait(), 1.0)
        await provider.aclose()
