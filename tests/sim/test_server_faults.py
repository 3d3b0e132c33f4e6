"""Every fault kind, proven as the official SDKs see it (max_retries=0, short timeouts)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from web.sim.replies import reply_text, tokenize
from web.sim.server import SimServer

from .clock import FakeClock
from .conftest import FAST, GPT, HAIKU, SONNET, bounded, claude, eventually, gpt

PROVIDERS = ("anthropic", "openai")
MODEL = {"anthropic": HAIKU, "openai": GPT}


@dataclass
class Seen:
    """What one SDK call produced: text deltas, terminator flags and the exception, if any."""

    deltas: list[str] = field(default_factory=list)
    error: BaseException | None = None
    terminated: bool = False
    """message_stop (anthropic) / [DONE] (openai) arrived."""
    finish_reason: str | None = None
    text: str | None = None

    @property
    def joined(self) -> str:
        return "".join(self.deltas)


async def call(
    sim: SimServer,
    provider: str,
    *,
    stream: bool = True,
    client_timeout: float = 2.0,
    prompt: str = "hi",
) -> Seen:
    seen = Seen()
    try:
        if provider == "anthropic":
            await _claude(sim, seen, stream, client_timeout, prompt)
        else:
            await _gpt(sim, seen, stream, client_timeout, prompt)
    except Exception as exc:
        seen.error = exc
    return seen


async def _claude(
    sim: SimServer, seen: Seen, stream: bool, client_timeout: float, prompt: str
) -> None:
    client = claude(sim, client_timeout)
    messages: Any = [{"role": "user", "content": prompt}]
    if not stream:
        message = await client.messages.create(model=HAIKU, max_tokens=500, messages=messages)
        seen.text = message.content[0].text if message.content[0].type == "text" else None
        seen.finish_reason = message.stop_reason
        return
    events = await client.messages.create(
        model=HAIKU, max_tokens=500, messages=messages, stream=True
    )
    async for event in events:
        if event.type == "content_block_delta" and event.delta.type == "text_delta":
            seen.deltas.append(event.delta.text)
        elif event.type == "message_delta":
            seen.finish_reason = event.delta.stop_reason
        elif event.type == "message_stop":
            seen.terminated = True


async def _gpt(
    sim: SimServer, seen: Seen, stream: bool, client_timeout: float, prompt: str
) -> None:
    client = gpt(sim, client_timeout)
    messages: Any = [{"role": "user", "content": prompt}]
    if not stream:
        completion = await client.chat.completions.create(model=GPT, messages=messages)
        seen.text = completion.choices[0].message.content
        seen.finish_reason = completion.choices[0].finish_reason
        return
    chunks = await client.chat.completions.create(
        model=GPT, messages=messages, stream=True, stream_options={"include_usage": True}
    )
    # The SDK swallows [DONE]; watch the raw SSE events for it.
    original = chunks._iter_events

    async def spy() -> Any:
        async for sse in original():
            if sse.data.startswith("[DONE]"):
                seen.terminated = True
            yield sse

    chunks._iter_events = spy  # type: ignore[method-assign]
    chunks._iterator = chunks.__stream__()
    async for chunk in chunks:
        if chunk.choices:
            if chunk.choices[0].delta.content:
                seen.deltas.append(chunk.choices[0].delta.content)
            if chunk.choices[0].finish_reason:
                seen.finish_reason = chunk.choices[0].finish_reason


def expected_tokens(provider: str) -> list[str]:
    return tokenize(reply_text(MODEL[provider], "hi", FAST.reply_tokens))


def fault(sim: SimServer, provider: str, kind: str, **params: Any) -> None:
    sim.registry.add({"model": MODEL[provider], "kind": kind, "count": 1, **params})


@pytest.mark.parametrize("provider", PROVIDERS)
@bounded(5)
async def test_no_fault_streams_the_whole_reply_with_its_terminator(
    sim: SimServer, provider: str
) -> None:
    seen = await call(sim, provider)
    assert seen.error is None
    assert seen.deltas == expected_tokens(provider)
    assert seen.terminated


# --- status and flap --------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
@bounded(5)
async def test_anthropic_status_faults_raise_the_right_class_with_type_and_headers(
    sim: SimServer, stream: bool
) -> None:
    cases = [
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (529, anthropic.OverloadedError, "overloaded_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (503, anthropic.ServiceUnavailableError, "api_error"),
        (401, anthropic.AuthenticationError, "authentication_error"),
        (400, anthropic.BadRequestError, "invalid_request_error"),
    ]
    for status, cls, error_type in cases:
        fault(sim, "anthropic", "status", status=status, retry_after=7)
        seen = await call(sim, "anthropic", stream=stream)
        assert isinstance(seen.error, cls), (status, seen.error)
        assert seen.error.status_code == status
        assert seen.error.type == error_type
        assert seen.error.request_id and seen.error.request_id.startswith("req_")
        assert seen.error.response.headers["retry-after"] == "7"
    assert isinstance(
        anthropic.OverloadedError("x", response=seen.error.response, body=None),
        anthropic.InternalServerError,
    )


@pytest.mark.parametrize("stream", [True, False])
@bounded(5)
async def test_openai_status_faults_raise_the_right_class_with_code_and_headers(
    sim: SimServer, stream: bool
) -> None:
    cases = [
        (429, None, openai.RateLimitError, "rate_limit_exceeded"),
        (429, "insufficient_quota", openai.RateLimitError, "insufficient_quota"),
        (400, "context_length_exceeded", openai.BadRequestError, "context_length_exceeded"),
        (400, "content_policy_violation", openai.BadRequestError, "content_policy_violation"),
        (500, None, openai.InternalServerError, None),
        (503, None, openai.InternalServerError, None),
    ]
    for status, code, cls, expected_code in cases:
        params = {"code": code} if code else {}
        fault(sim, "openai", "status", status=status, retry_after=1.5, **params)
        seen = await call(sim, "openai", stream=stream)
        assert isinstance(seen.error, cls), (status, code, seen.error)
        assert seen.error.status_code == status
        assert seen.error.code == expected_code
        assert seen.error.request_id and seen.error.request_id.startswith("req_")
        assert seen.error.response.headers["retry-after"] == "1.5"


@bounded(5)
async def test_status_without_retry_after_sends_no_retry_after(sim: SimServer) -> None:
    fault(sim, "anthropic", "status", status=429)
    seen = await call(sim, "anthropic")
    assert isinstance(seen.error, anthropic.RateLimitError)
    assert "retry-after" not in seen.error.response.headers


@pytest.mark.parametrize("provider", PROVIDERS)
@bounded(5)
async def test_flap_fails_for_down_s_then_heals(provider: str) -> None:
    clock = FakeClock()
    async with SimServer(default_profile=FAST, clock=clock) as sim:
        sim.registry.add({"model": MODEL[provider], "kind": "flap", "status": 503, "down_s": 0.4})
        first = await call(sim, provider)
        clock.advance(0.399)
        second = await call(sim, provider, stream=False)
        assert first.error is not None and getattr(first.error, "status_code", None) == 503
        assert second.error is not None and getattr(second.error, "status_code", None) == 503
        clock.advance(0.001)
        healed = await call(sim, provider)
        assert healed.error is None and healed.terminated
        assert sim.registry.list() == []
        assert [e.outcome for e in sim.log.entries()] == ["flap", "flap", "ok"]


# --- below HTTP: reset, hang --------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("stream", [True, False])
@bounded(5)
async def test_reset_is_a_connection_error_before_any_event(
    sim: SimServer, provider: str, stream: bool
) -> None:
    fault(sim, provider, "reset")
    seen = await call(sim, provider, stream=stream)
    cls = anthropic.APIConnectionError if provider == "anthropic" else openai.APIConnectionError
    assert isinstance(seen.error, cls)
    assert not isinstance(seen.error, anthropic.APITimeoutError | openai.APITimeoutError)
    assert isinstance(seen.error.__cause__, httpx2.ReadError | httpx2.RemoteProtocolError)
    assert seen.deltas == []
    assert sim.log.entries()[0].outcome == "reset"
    assert sim.log.entries()[0].status is None


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("stream", [True, False])
@bounded(5)
async def test_hang_is_a_timeout_with_a_short_client_timeout(
    sim: SimServer, provider: str, stream: bool
) -> None:
    fault(sim, provider, "hang")
    loop = asyncio.get_running_loop()
    start = loop.time()
    seen = await call(sim, provider, stream=stream, client_timeout=0.3)
    cls = anthropic.APITimeoutError if provider == "anthropic" else openai.APITimeoutError
    assert isinstance(seen.error, cls)
    assert 0.3 <= loop.time() - start < 1.5
    # The handler notices the client gave up and goes away.
    assert await eventually(lambda: sim.open_connections == 0)


# --- timing: slow_first_token, stall ------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
@bounded(5)
async def test_slow_first_token_delays_the_first_delta_then_completes(
    sim: SimServer, provider: str
) -> None:
    fault(sim, provider, "slow_first_token", delay_s=0.4)
    loop = asyncio.get_running_loop()
    start = loop.time()
    seen = await call(sim, provider)
    assert seen.error is None and seen.terminated
    assert seen.deltas == expected_tokens(provider)
    assert loop.time() - start >= 0.4
    # With a read timeout shorter than the delay, the SDK times out before the first token.
    fault(sim, provider, "slow_first_token", delay_s=1.0)
    late = await call(sim, provider, client_timeout=0.3)
    assert late.deltas == []
    assert isinstance(
        late.error, httpx2.ReadTimeout | anthropic.APITimeoutError | openai.APITimeoutError
    )


@pytest.mark.parametrize("provider", PROVIDERS)
@bounded(5)
async def test_stall_goes_silent_after_n_tokens(sim: SimServer, provider: str) -> None:
    fault(sim, provider, "stall", after_tokens=4, delay_s=30)
    seen = await call(sim, provider, client_timeout=0.3)
    assert seen.deltas == expected_tokens(provider)[:4]
    if provider == "anthropic":
        assert isinstance(seen.error, httpx2.ReadTimeout)  # raw, not wrapped
    else:
        assert isinstance(seen.error, openai.APITimeoutError)


@pytest.mark.parametrize("provider", PROVIDERS)
@bounded(5)
async def test_stall_then_closes_without_terminator(sim: SimServer, provider: str) -> None:
    fault(sim, provider, "stall", after_tokens=2, delay_s=0.3)
    seen = await call(sim, provider, client_timeout=2)
    assert seen.deltas == expected_tokens(provider)[:2]
    assert isinstance(seen.error, httpx2.RemoteProtocolError | openai.APIConnectionError)
    assert not seen.terminated


# --- broken streams: cut, error_event, malformed, no_terminator --------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
@bounded(5)
async def test_cut_drops_the_connection_after_n_deltas(sim: SimServer, provider: str) -> None:
    fault(sim, provider, "cut", after_tokens=3)
    seen = await call(sim, provider)
    assert seen.deltas == expected_tokens(provider)[:3]
    assert not seen.terminated
    if provider == "anthropic":
        assert isinstance(seen.error, httpx2.RemoteProtocolError)  # raw, not wrapped
    else:
        assert isinstance(seen.error, openai.APIConnectionError)
        assert isinstance(seen.error.__cause__, httpx2.RemoteProtocolError)


@pytest.mark.parametrize("provider", PROVIDERS)
@bounded(5)
async def test_cut_non_stream_is_a_connection_error(sim: SimServer, provider: str) -> None:
    fault(sim, provider, "cut", after_tokens=3)
    seen = await call(sim, provider, stream=False)
    cls = anthropic.APIConnectionError if provider == "anthropic" else openai.APIConnectionError
    assert isinstance(seen.error, cls)


@bounded(5)
async def test_anthropic_error_event_is_a_status_200_overloaded_error(sim: SimServer) -> None:
    fault(sim, "anthropic", "error_event", after_tokens=5)
    seen = await call(sim, "anthropic")
    assert seen.deltas == expected_tokens("anthropic")[:5]
    assert type(seen.error) is anthropic.APIStatusError
    assert seen.error.status_code == 200
    assert seen.error.type == "overloaded_error"
    assert seen.error.request_id and seen.error.request_id.startswith("req_")
    fault(sim, "anthropic", "error_event", after_tokens=0, error_type="api_error")
    other = await call(sim, "anthropic")
    assert isinstance(other.error, anthropic.APIStatusError) and other.error.type == "api_error"


@bounded(5)
async def test_openai_error_event_is_an_api_error_with_type(sim: SimServer) -> None:
    fault(sim, "openai", "error_event", after_tokens=5)
    seen = await call(sim, "openai")
    assert seen.deltas == expected_tokens("openai")[:5]
    assert type(seen.error) is openai.APIError
    assert seen.error.type == "server_error"


@bounded(5)
async def test_error_event_non_stream_is_the_matching_http_error(sim: SimServer) -> None:
    fault(sim, "anthropic", "error_event")
    a = await call(sim, "anthropic", stream=False)
    assert isinstance(a.error, anthropic.OverloadedError) and a.error.status_code == 529
    fault(sim, "openai", "error_event")
    o = await call(sim, "openai", stream=False)
    assert isinstance(o.error, openai.InternalServerError) and o.error.type == "server_error"


@pytest.mark.parametrize("provider", PROVIDERS)
@bounded(5)
async def test_malformed_event_raises_json_decode_error(sim: SimServer, provider: str) -> None:
    fault(sim, provider, "malformed", after_tokens=2)
    seen = await call(sim, provider)
    assert seen.deltas == expected_tokens(provider)[:2]
    assert isinstance(seen.error, json.JSONDecodeError)


@pytest.mark.parametrize("provider", PROVIDERS)
@bounded(5)
async def test_malformed_by_event_index(sim: SimServer, provider: str) -> None:
    fault(sim, provider, "malformed", n=1)  # message_start / the role chunk
    seen = await call(sim, provider)
    assert seen.deltas == []
    assert isinstance(seen.error, json.JSONDecodeError)


@pytest.mark.parametrize("provider", PROVIDERS)
@bounded(5)
async def test_malformed_non_stream_body_is_not_json(sim: SimServer, provider: str) -> None:
    fault(sim, provider, "malformed")
    seen = await call(sim, provider, stream=False)
    assert isinstance(seen.error, json.JSONDecodeError)


@bounded(5)
async def test_anthropic_no_terminator_ends_cleanly_without_message_stop(sim: SimServer) -> None:
    fault(sim, "anthropic", "no_terminator")
    seen = await call(sim, "anthropic")
    assert seen.error is None  # the SDK does not notice
    assert seen.deltas == expected_tokens("anthropic")
    assert seen.finish_reason == "end_turn"  # the trap: stop_reason came, message_stop did not
    assert not seen.terminated


@bounded(5)
async def test_openai_no_terminator_ends_without_finish_reason_or_done(sim: SimServer) -> None:
    fault(sim, "openai", "no_terminator")
    seen = await call(sim, "openai")
    assert seen.error is None  # the SDK does not notice
    assert seen.deltas == expected_tokens("openai")
    assert seen.finish_reason is None
    assert not seen.terminated


@bounded(5)
async def test_openai_no_terminator_keeping_the_tail_misses_only_done(sim: SimServer) -> None:
    fault(sim, "openai", "no_terminator", tail="keep")
    seen = await call(sim, "openai")
    assert seen.error is None
    assert seen.deltas == expected_tokens("openai")
    assert seen.finish_reason == "stop"
    assert not seen.terminated


@bounded(5)
async def test_no_terminator_can_hold_the_body_open(sim: SimServer) -> None:
    fault(sim, "openai", "no_terminator", tail="keep", hold_s=30)
    seen = await call(sim, "openai", client_timeout=0.3)
    assert isinstance(seen.error, openai.APITimeoutError)  # silent after the usage chunk
    assert seen.finish_reason == "stop"
    assert seen.deltas == expected_tokens("openai")


@pytest.mark.parametrize("provider", PROVIDERS)
@bounded(5)
async def test_no_terminator_leaves_non_stream_requests_alone(
    sim: SimServer, provider: str
) -> None:
    fault(sim, provider, "no_terminator")
    plain = await call(sim, provider, stream=False)
    assert plain.error is None
    assert len(sim.registry.list()) == 1  # not used up by a non-stream request
    streamed = await call(sim, provider)
    assert not streamed.terminated
    assert sim.registry.list() == []


# --- matching and count -------------------------------------------------------------------------


@bounded(5)
async def test_count_limits_hits_and_model_matching(sim: SimServer) -> None:
    sim.registry.add({"model": HAIKU, "kind": "status", "status": 529, "count": 2})
    outcomes = [await call(sim, "anthropic") for _ in range(3)]
    assert [type(s.error) for s in outcomes] == [
        anthropic.OverloadedError,
        anthropic.OverloadedError,
        type(None),
    ]
    other = await claude(sim).messages.create(
        model=SONNET, max_tokens=5, messages=[{"role": "user", "content": "x"}]
    )
    assert other.stop_reason == "max_tokens"
    log = [(e.model, e.outcome) for e in sim.log.entries()]
    assert log == [(HAIKU, "status"), (HAIKU, "status"), (HAIKU, "ok"), (SONNET, "ok")]


@bounded(5)
async def test_star_matches_every_model_and_null_count_lasts_until_deleted(sim: SimServer) -> None:
    added = sim.registry.add({"model": "*", "kind": "status", "status": 500, "count": None})
    for provider in PROVIDERS * 3:
        seen = await call(sim, provider)
        assert getattr(seen.error, "status_code", None) == 500
    assert sim.registry.remove(added.id)
    assert (await call(sim, "openai")).error is None


@bounded(5)
async def test_oldest_matching_fault_wins(sim: SimServer) -> None:
    sim.registry.add({"model": "*", "kind": "status", "status": 503, "count": 1})
    sim.registry.add({"model": HAIKU, "kind": "status", "status": 429, "count": 1})
    first, second = await call(sim, "anthropic"), await call(sim, "anthropic")
    assert isinstance(first.error, anthropic.ServiceUnavailableError)
    assert isinstance(second.error, anthropic.RateLimitError)


@bounded(5)
async def test_status_fault_with_context_code_reads_like_each_providers_context_error(
    sim: SimServer,
) -> None:
    fault(sim, "anthropic", "status", status=400, code="context_length_exceeded")
    a = await call(sim, "anthropic")
    assert isinstance(a.error, anthropic.BadRequestError)
    assert "prompt is too long" in str(a.error)
    fault(sim, "openai", "status", status=400, code="context_length_exceeded")
    o = await call(sim, "openai")
    assert isinstance(o.error, openai.BadRequestError)
    assert o.error.code == "context_length_exceeded" and o.error.param == "messages"


@bounded(5)
async def test_custom_error_type_and_message(sim: SimServer) -> None:
    fault(sim, "anthropic", "status", status=500, error_type="api_error", message="boom")
    seen = await call(sim, "anthropic", stream=False)
    assert isinstance(seen.error, anthropic.InternalServerError)
    assert seen.error.type == "api_error" and seen.error.api_message == "boom"
