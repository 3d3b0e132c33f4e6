"""The simulator as the official SDKs see it when nothing goes wrong, plus its own 4xx answers."""

from __future__ import annotations

import asyncio
import json
import random
import threading
from typing import Any

import anthropic
import httpx
import openai
import pytest

from web.sim import exchange, replies
from web.sim.exchange import INLINE_TOKENS
from web.sim.limits import MAX_REPLY_TOKENS
from web.sim.replies import first_tokens, reply_text, tokenize
from web.sim.server import ModelProfile, SimServer

from .conftest import FAST, GPT, HAIKU, SONNET, bounded, claude, eventually, gpt

PROMPT = "What is a fallback chain?"
EXPECTED = reply_text(HAIKU, PROMPT, FAST.reply_tokens)


@bounded(5)
async def test_anthropic_non_stream_returns_the_deterministic_reply_and_usage(
    sim: SimServer,
) -> None:
    message = await claude(sim).messages.create(
        model=HAIKU,
        max_tokens=500,
        system="Be brief.",
        messages=[{"role": "user", "content": PROMPT}],
    )
    assert message.content[0].type == "text"
    assert message.content[0].text == EXPECTED
    assert message.model == HAIKU
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == 2 + 5
    assert message.usage.output_tokens == len(tokenize(EXPECTED))
    assert message.id.startswith("msg_")


@bounded(5)
async def test_anthropic_stream_has_every_event_and_cumulative_usage(sim: SimServer) -> None:
    stream = await claude(sim).messages.create(
        model=HAIKU,
        max_tokens=500,
        messages=[
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "first answer"},
            {"role": "user", "content": [{"type": "text", "text": PROMPT}]},
        ],
        stream=True,
    )
    types, deltas, usage = [], [], None
    async for event in stream:
        types.append(event.type)
        if event.type == "content_block_delta" and event.delta.type == "text_delta":
            deltas.append(event.delta.text)
        if event.type == "message_delta":
            usage = event.usage
            assert event.delta.stop_reason == "end_turn"
        if event.type == "message_start":
            assert event.message.usage.input_tokens == 2 + 2 + 5
    assert "".join(deltas) == EXPECTED
    assert deltas == tokenize(EXPECTED)
    assert types[:2] == ["message_start", "content_block_start"]
    assert types[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert usage is not None and usage.output_tokens == len(deltas)
    assert stream.response.headers["request-id"].startswith("req_")


@bounded(5)
async def test_openai_non_stream_returns_the_deterministic_reply_and_usage(sim: SimServer) -> None:
    completion = await gpt(sim).chat.completions.create(
        model=GPT,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": PROMPT},
        ],
    )
    expected = reply_text(GPT, PROMPT, FAST.reply_tokens)
    assert completion.choices[0].message.content == expected
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 2 + 5
    assert completion.usage.completion_tokens == len(tokenize(expected))
    assert completion.usage.total_tokens == 7 + len(tokenize(expected))


@bounded(5)
async def test_openai_stream_role_first_then_content_finish_usage_and_done(
    sim: SimServer,
) -> None:
    stream = await gpt(sim).chat.completions.create(
        model=GPT,
        messages=[{"role": "user", "content": PROMPT}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    expected = reply_text(GPT, PROMPT, FAST.reply_tokens)
    assert chunks[0].choices[0].delta.role == "assistant"
    content = [c.choices[0].delta.content for c in chunks[1:] if c.choices]
    assert "".join(x or "" for x in content) == expected
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == len(tokenize(expected))
    assert stream.response.headers["x-request-id"].startswith("req_")


@bounded(5)
async def test_openai_stream_without_include_usage_has_no_usage_chunk(sim: SimServer) -> None:
    stream = await gpt(sim).chat.completions.create(
        model=GPT, messages=[{"role": "user", "content": PROMPT}], stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)


@bounded(5)
async def test_raw_anthropic_frames_all_carry_an_event_line_and_a_ping(sim: SimServer) -> None:
    async with httpx.AsyncClient(timeout=2) as client:
        response = await client.post(
            f"{sim.url}/anthropic/v1/messages",
            headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
            json={
                "model": SONNET,
                "max_tokens": 50,
                "stream": True,
                "messages": [{"role": "user", "content": "hi"}],
            },
        )
    frames = [f for f in response.text.split("\n\n") if f]
    assert response.headers["content-type"].startswith("text/event-stream")
    assert all(f.startswith("event: ") and "\ndata: " in f for f in frames)
    assert sum(f.startswith("event: ping") for f in frames) == 1
    assert frames[-1] == 'event: message_stop\ndata: {"type":"message_stop"}'


@bounded(5)
async def test_raw_openai_stream_ends_with_done(sim: SimServer) -> None:
    async with httpx.AsyncClient(timeout=2) as client:
        response = await client.post(
            f"{sim.url}/openai/v1/chat/completions",
            headers={"authorization": "Bearer k"},
            json={"model": GPT, "stream": True, "messages": [{"role": "user", "content": "hi"}]},
        )
    frames = [f for f in response.text.split("\n\n") if f]
    assert all(f.startswith("data: ") for f in frames)
    assert frames[-1] == "data: [DONE]"


@bounded(5)
async def test_max_tokens_truncates_with_the_providers_stop_reason(sim: SimServer) -> None:
    message = await claude(sim).messages.create(
        model=HAIKU, max_tokens=5, messages=[{"role": "user", "content": PROMPT}]
    )
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 5
    assert message.content[0].type == "text"
    assert message.content[0].text == "".join(tokenize(EXPECTED)[:5])
    completion = await gpt(sim).chat.completions.create(
        model=GPT, max_completion_tokens=4, messages=[{"role": "user", "content": PROMPT}]
    )
    assert completion.choices[0].finish_reason == "length"


@bounded(5)
async def test_missing_key_is_a_401_in_each_providers_format(sim: SimServer) -> None:
    async with httpx.AsyncClient(timeout=2) as client:
        a = await client.post(
            f"{sim.url}/anthropic/v1/messages",
            json={"model": HAIKU, "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
        )
        o = await client.post(
            f"{sim.url}/openai/v1/chat/completions",
            json={"model": GPT, "messages": [{"role": "user", "content": "x"}]},
        )
    assert a.status_code == 401
    assert a.json()["error"]["type"] == "authentication_error"
    assert a.headers["request-id"].startswith("req_")
    assert o.status_code == 401
    assert o.json()["error"]["code"] == "missing_api_key"
    assert o.headers["x-request-id"].startswith("req_")
    assert [e.outcome for e in sim.log.entries()] == ["error:401", "error:401"]


@bounded(5)
async def test_anthropic_accepts_x_api_key_as_well_as_bearer(sim: SimServer) -> None:
    async with httpx.AsyncClient(timeout=2) as client:
        response = await client.post(
            f"{sim.url}/anthropic/v1/messages",
            headers={"x-api-key": "k"},
            json={"model": HAIKU, "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
        )
    assert response.status_code == 200


@bounded(5)
async def test_unknown_model_is_the_providers_404(sim: SimServer) -> None:
    with pytest.raises(anthropic.NotFoundError) as a:
        await claude(sim).messages.create(
            model="claude-nope", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert a.value.type == "not_found_error"
    with pytest.raises(openai.NotFoundError) as o:
        await gpt(sim).chat.completions.create(
            model="gpt-nope", messages=[{"role": "user", "content": "x"}]
        )
    assert o.value.code == "model_not_found"
    assert [e.outcome for e in sim.log.entries()] == ["error:404", "error:404"]


@bounded(5)
async def test_context_too_long_in_each_providers_format(sim: SimServer) -> None:
    sim.set_profile(HAIKU, context_window=10)
    sim.set_profile(GPT, context_window=10)
    long_prompt = "word " * 11
    with pytest.raises(anthropic.BadRequestError) as a:
        await claude(sim).messages.create(
            model=HAIKU, max_tokens=5, messages=[{"role": "user", "content": long_prompt}]
        )
    assert a.value.type == "invalid_request_error"
    assert "prompt is too long: 11 tokens > 10 maximum" in str(a.value)
    with pytest.raises(openai.BadRequestError) as o:
        await gpt(sim).chat.completions.create(
            model=GPT, messages=[{"role": "user", "content": long_prompt}]
        )
    assert o.value.code == "context_length_exceeded"
    # A model with a larger window still answers the same prompt.
    ok = await claude(sim).messages.create(
        model=SONNET, max_tokens=5, messages=[{"role": "user", "content": long_prompt}]
    )
    assert ok.stop_reason == "max_tokens"


@bounded(5)
async def test_invalid_body_is_a_400(sim: SimServer) -> None:
    async with httpx.AsyncClient(timeout=2) as client:
        no_max = await client.post(
            f"{sim.url}/anthropic/v1/messages",
            headers={"x-api-key": "k"},
            json={"model": HAIKU, "messages": [{"role": "user", "content": "x"}]},
        )
        not_json = await client.post(
            f"{sim.url}/openai/v1/chat/completions",
            headers={"authorization": "Bearer k"},
            content=b"{nope",
        )
    assert no_max.status_code == 400
    assert "max_tokens" in no_max.json()["error"]["message"]
    assert not_json.status_code == 400
    assert not_json.json()["error"]["type"] == "invalid_request_error"


@bounded(5)
async def test_profile_timing_is_honoured(sim: SimServer) -> None:
    sim.set_profile(HAIKU, first_token_s=0.3, tokens_per_s=100.0, reply_tokens=10)
    loop = asyncio.get_running_loop()
    start = loop.time()
    stream = await claude(sim).messages.create(
        model=HAIKU, max_tokens=100, messages=[{"role": "user", "content": "x"}], stream=True
    )
    first = last = None
    async for event in stream:
        if event.type == "content_block_delta":
            first = first or loop.time() - start
            last = loop.time() - start
    assert first is not None and last is not None
    # The simulator never sends a token before its time (it skips sleeps under 0.5 ms); a busy
    # machine only makes tokens later, then sends the late ones in a burst. So: bounds from
    # below on the schedule, and only a generous one above.
    tokens = len(tokenize(reply_text(HAIKU, "x", 10)))
    assert 0.299 <= first < 3.0
    assert last >= 0.299 + (tokens - 1) / 100


@bounded(5)
async def test_connections_are_kept_alive_between_requests(sim: SimServer) -> None:
    client = claude(sim)
    for _ in range(3):
        await client.messages.create(
            model=HAIKU, max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
        stream = await client.messages.create(
            model=HAIKU, max_tokens=5, messages=[{"role": "user", "content": "x"}], stream=True
        )
        async for _event in stream:
            pass
    assert sim.open_connections == 1  # one pooled connection served all six requests


@bounded(5)
async def test_concurrent_streams(sim: SimServer) -> None:
    client = gpt(sim)

    async def one(i: int) -> str:
        stream = await client.chat.completions.create(
            model=GPT, messages=[{"role": "user", "content": f"q{i}"}], stream=True
        )
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    texts = await asyncio.gather(*(one(i) for i in range(50)))
    assert texts == [reply_text(GPT, f"q{i}", FAST.reply_tokens) for i in range(50)]


@bounded(5)
async def test_stop_closes_hung_connections_and_the_listener() -> None:
    sim = SimServer(default_profile=FAST)
    await sim.start()
    sim.registry.add({"model": "*", "kind": "hang"})
    client = claude(sim, timeout=30)
    call = asyncio.ensure_future(
        client.messages.create(
            model=HAIKU, max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    )
    assert await eventually(lambda: sim.log.count() > 0)
    await asyncio.wait_for(sim.stop(), 1)
    assert sim.open_connections == 0
    with pytest.raises(anthropic.APIConnectionError):
        await asyncio.wait_for(call, 1)
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as raw:
            await raw.get(f"{sim.url}/faults")


@bounded(5)
async def test_profiles_from_the_constructor_and_unknown_models_with_a_profile() -> None:
    custom = ModelProfile(first_token_s=0, tokens_per_s=1000, reply_tokens=5, context_window=50)
    async with SimServer(profiles={"my-model": custom}, default_profile=FAST) as sim:
        completion = await gpt(sim).chat.completions.create(
            model="my-model", messages=[{"role": "user", "content": "x"}]
        )
        text = completion.choices[0].message.content
        assert text == reply_text("my-model", "x", 5)
        assert sim.profiles.get(HAIKU) == FAST


def test_default_profiles_feel_real_and_sonnet_is_slower_than_haiku() -> None:
    sim = SimServer()
    sonnet, haiku = sim.profiles.get(SONNET), sim.profiles.get(HAIKU)
    for p in (sonnet, haiku, sim.profiles.get(GPT)):
        assert 0.3 <= p.first_token_s <= 0.6
        assert 60 <= p.tokens_per_s <= 120
        assert 60 <= p.reply_tokens <= 120
    assert sonnet.first_token_s > haiku.first_token_s
    assert sonnet.tokens_per_s < haiku.tokens_per_s
    assert json.dumps(sim.profiles.to_json())


@bounded(5)
async def test_a_client_leaving_mid_stream_ends_the_handler_quietly(
    sim: SimServer, caplog: pytest.LogCaptureFixture
) -> None:
    sim.set_profile(HAIKU, tokens_per_s=50.0, reply_tokens=200)
    client = claude(sim)
    stream = await client.messages.create(
        model=HAIKU, max_tokens=500, messages=[{"role": "user", "content": "x"}], stream=True
    )
    seen = 0
    async for event in stream:
        seen += event.type == "content_block_delta"
        if seen == 2:
            break
    await stream.close()
    await client.close()
    assert await eventually(lambda: sim.open_connections == 0, within=2)
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "WARNING")]
    assert sim.log.entries()[0].outcome == "ok"


@bounded(5)
async def test_a_slow_non_stream_request_is_logged_when_it_arrives(sim: SimServer) -> None:
    sim.registry.add({"model": GPT, "kind": "slow_first_token", "delay_s": 60})
    call = asyncio.ensure_future(
        gpt(sim, timeout=90).chat.completions.create(
            model=GPT, messages=[{"role": "user", "content": "x"}]
        )
    )
    try:
        assert await eventually(lambda: sim.log.count() > 0)
        assert not call.done()  # logged while the answer is still 60 s away
    finally:
        call.cancel()
        await asyncio.wait([call])
    assert [e.outcome for e in sim.log.entries()] == ["slow_first_token"]


@bounded(10)
async def test_a_long_profile_costs_only_the_tokens_the_request_asks_for(
    sim: SimServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = 0
    sentence_of = replies._sentence

    def counting(rng: random.Random) -> str:
        nonlocal made
        made += 1
        return sentence_of(rng)

    monkeypatch.setattr(replies, "_sentence", counting)
    sim.set_profile("*", reply_tokens=MAX_REPLY_TOKENS)
    async with claude(sim).messages.stream(
        model=HAIKU, max_tokens=60, messages=[{"role": "user", "content": PROMPT}]
    ) as stream:
        message = await stream.get_final_message()
    assert made <= 13  # sentences of five words or more: enough for 61 tokens, no more
    assert (message.stop_reason, message.usage.output_tokens) == ("max_tokens", 60)
    assert message.content[0].type == "text"
    assert message.content[0].text == "".join(tokenize(reply_text(HAIKU, PROMPT, 1000))[:60])


@bounded(10)
async def test_a_long_reply_is_made_off_the_event_loop(
    sim: SimServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[int] = []

    def recording(*args: Any) -> tuple[list[str], bool]:
        threads.append(threading.get_ident())
        return first_tokens(*args)

    monkeypatch.setattr(exchange, "first_tokens", recording)
    sim.set_profile("*", reply_tokens=INLINE_TOKENS * 2)
    for max_tokens in (INLINE_TOKENS * 2, 50):
        message = await claude(sim).messages.create(
            model=HAIKU, max_tokens=max_tokens, messages=[{"role": "user", "content": PROMPT}]
        )
        assert message.usage.output_tokens == min(max_tokens, len(message.content[0].text.split()))
    loop_thread = threading.get_ident()
    assert threads[0] != loop_thread  # the long reply: in a worker thread
    assert threads[1] == loop_thread  # the short one: not worth the hop
