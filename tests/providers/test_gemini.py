"""The Gemini adapter on the real google-genai SDK: against the simulator for every fault kind,
and against a wall for the finish reasons and shapes the simulator does not make."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from web.providers.base import (
    ChatMessage,
    ChatRequest,
    ErrorKind,
    ProviderError,
    StreamItem,
    TextDelta,
    Usage,
)
from web.providers.gemini_provider import GeminiProvider, classify
from web.settings import Timeouts
from web.sim.replies import reply_text

from support.engine import GEMINI, PATIENT, REPLY_TOKENS, SHORT, Upstream
from support.wall import Wall, gemini_chunk

K = ErrorKind
PROMPT = "and the second one?"
REQUEST = ChatRequest(
    messages=(
        ChatMessage("user", "first question"),
        ChatMessage("assistant", "first answer"),
        ChatMessage("user", PROMPT),
    ),
    system="Be brief.",
)


def gemini_at(url: str, timeouts: Timeouts = SHORT, **kwargs: Any) -> GeminiProvider:
    return GeminiProvider(api_key="test-key", base_url=url, timeouts=timeouts, **kwargs)


@pytest.fixture
async def gemini(upstream: Upstream) -> AsyncIterator[GeminiProvider]:
    """With PATIENT limits: its tests are of replies and faults, never of a read backstop, and a
    loaded machine may hold a healthy first token past SHORT's half second."""
    provider = gemini_at(f"{upstream.url}/gemini/", PATIENT)
    yield provider
    await provider.aclose()


async def drain(provider: GeminiProvider, request: ChatRequest = REQUEST) -> list[StreamItem]:
    return [item async for item in provider.stream(request, GEMINI)]


async def failure(provider: GeminiProvider) -> tuple[ProviderError, list[StreamItem]]:
    items: list[StreamItem] = []
    with pytest.raises(ProviderError) as caught:
        async for item in provider.stream(REQUEST, GEMINI):
            items.append(item)
    return caught.value, items


def text(items: list[StreamItem]) -> str:
    return "".join(i.text for i in items if isinstance(i, TextDelta))


async def test_text_then_one_usage_from_the_simulator(
    gemini: GeminiProvider, upstream: Upstream
) -> None:
    items = await drain(gemini)
    *texts, usage = items
    assert all(isinstance(t, TextDelta) for t in texts)
    assert text(items) == reply_text(GEMINI, PROMPT, REPLY_TOKENS)
    assert isinstance(usage, Usage)
    assert usage.output_tokens == len(texts)
    assert usage.input_tokens is not None and usage.input_tokens >= 10
    assert (usage.stop_reason, usage.hit_length_limit) == ("STOP", False)
    (logged,) = upstream.sim.log.entries()
    assert (logged.provider, logged.model, logged.stream) == ("gemini", GEMINI, True)
    assert usage.request_id == logged.request_id  # Gemini's responseId


async def test_max_tokens_is_a_reply_cut_at_the_length_limit(gemini: GeminiProvider) -> None:
    items = await drain(gemini, ChatRequest(messages=(ChatMessage("user", PROMPT),), max_tokens=5))
    usage = items[-1]
    assert isinstance(usage, Usage)
    assert (usage.stop_reason, usage.hit_length_limit, usage.output_tokens) == (
        "MAX_TOKENS",
        True,
        5,
    )
    assert len(items) == 6


STATUS_CASES = {
    "rate-limited": ({"status": 429}, K.RATE_LIMITED),
    "per-day-quota": (
        {"status": 429, "code": "GenerateRequestsPerDayPerProjectPerModel"},
        K.QUOTA_EXHAUSTED,
    ),
    "overloaded": ({"status": 503}, K.OVERLOADED),
    "server-error": ({"status": 500}, K.SERVER_ERROR),
    "deadline": ({"status": 504}, K.TIMEOUT),
    "permission": ({"status": 403}, K.AUTH),
    "unauthenticated": ({"status": 401}, K.AUTH),
    "bad-key-is-a-400": (
        {"status": 400, "code": "API_KEY_INVALID", "message": "API key not valid."},
        K.AUTH,
    ),
    "bad-request": ({"status": 400}, K.BAD_REQUEST),
    "context": ({"status": 400, "code": "context_length_exceeded"}, K.CONTEXT_TOO_LONG),
    "not-found": ({"status": 404}, K.NOT_FOUND),
    "408": ({"status": 408}, K.SERVER_ERROR),
    "409-aborted": ({"status": 409}, K.SERVER_ERROR),
    "422": ({"status": 422}, K.BAD_REQUEST),
}


@pytest.mark.parametrize("case", sorted(STATUS_CASES))
async def test_status_faults_are_classified_by_their_status_name(
    gemini: GeminiProvider, upstream: Upstream, case: str
) -> None:
    params, kind = STATUS_CASES[case]
    await upstream.fault(GEMINI, "status", **params)
    error, items = await failure(gemini)
    assert items == []
    assert (error.kind, error.status) == (kind, params["status"])
    assert error.message.startswith(f"HTTP {params['status']} ")
    assert await upstream.requests() == {GEMINI: 1}  # the SDK retried nothing


async def test_retry_info_becomes_retry_after(gemini: GeminiProvider, upstream: Upstream) -> None:
    await upstream.fault(GEMINI, "status", status=429, retry_after=1.5)
    error, _ = await failure(gemini)
    assert (error.kind, error.retry_after) == (K.RATE_LIMITED, 1.5)
    assert error.message.startswith("HTTP 429 RESOURCE_EXHAUSTED: ")


async def test_flap_is_overloaded_while_down(gemini: GeminiProvider, upstream: Upstream) -> None:
    await upstream.fault(GEMINI, "flap", status=503, down_s=60)
    error, _ = await failure(gemini)
    assert (error.kind, error.status) == (K.OVERLOADED, 503)


async def test_unknown_model_and_context_window_from_the_simulator(
    upstream: Upstream,
) -> None:
    provider = gemini_at(f"{upstream.url}/gemini/")
    with pytest.raises(ProviderError) as unknown:
        async for _ in provider.stream(REQUEST, "gemini-0-nonesuch"):
            pass
    upstream.sim.set_profile(GEMINI, context_window=5)
    error, _ = await failure(provider)
    await provider.aclose()
    assert unknown.value.kind is K.NOT_FOUND and "is not found" in unknown.value.message
    assert (error.kind, error.status) == (K.CONTEXT_TOO_LONG, 400)


async def test_reset_is_a_connection_error(gemini: GeminiProvider, upstream: Upstream) -> None:
    await upstream.fault(GEMINI, "reset")
    error, items = await failure(gemini)
    assert (error.kind, items) == (K.CONNECTION, [])
    assert await upstream.requests() == {GEMINI: 1}


async def test_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = gemini_at(f"http://127.0.0.1:{port}/gemini/")
    error, _ = await failure(provider)
    await provider.aclose()
    assert error.kind is K.CONNECTION


@pytest.mark.parametrize("kind", ["hang", "stall"])
async def test_silence_is_a_timeout_at_the_read_backstop(upstream: Upstream, kind: str) -> None:
    params = {"after_tokens": 2, "delay_s": 30} if kind == "stall" else {}
    await upstream.fault(GEMINI, kind, **params)
    provider = gemini_at(f"{upstream.url}/gemini/")  # SHORT: a half-second backstop
    try:
        error, items = await asyncio.wait_for(failure(provider), 5)
    finally:
        await provider.aclose()
    assert error.kind is K.TIMEOUT
    assert len(items) == (2 if kind == "stall" else 0)


async def test_slow_first_token_in_time_still_answers(
    gemini: GeminiProvider, upstream: Upstream
) -> None:
    await upstream.fault(GEMINI, "slow_first_token", delay_s=0.1)
    items = await drain(gemini)
    assert text(items) == reply_text(GEMINI, PROMPT, REPLY_TOKENS)


@pytest.mark.parametrize("after", [0, 3])
async def test_cut_is_a_connection_error_after_the_text_so_far(
    gemini: GeminiProvider, upstream: Upstream, after: int
) -> None:
    await upstream.fault(GEMINI, "cut", after_tokens=after)
    error, items = await failure(gemini)
    assert error.kind is K.CONNECTION
    assert len(items) == after
    assert await upstream.requests() == {GEMINI: 1}  # no hidden reconnect by the SDK


@pytest.mark.parametrize(
    ("error_type", "kind"),
    [(None, K.OVERLOADED), ("RESOURCE_EXHAUSTED", K.RATE_LIMITED), ("INTERNAL", K.SERVER_ERROR)],
)
async def test_error_event_inside_the_stream(
    gemini: GeminiProvider, upstream: Upstream, error_type: str | None, kind: ErrorKind
) -> None:
    params = {"error_type": error_type} if error_type else {}
    await upstream.fault(GEMINI, "error_event", after_tokens=2, **params)
    error, items = await failure(gemini)
    assert error.kind is kind
    assert error.status is None  # it came inside an HTTP 200 stream
    assert error.message.startswith("in-stream ")
    assert len(items) == 2


@pytest.mark.parametrize("params", [{"after_tokens": 2}, {"n": 1}])
async def test_malformed_event(
    gemini: GeminiProvider, upstream: Upstream, params: dict[str, int]
) -> None:
    await upstream.fault(GEMINI, "malformed", **params)
    error, items = await failure(gemini)
    assert error.kind is K.MALFORMED
    assert len(items) == params.get("after_tokens", 0)


async def test_no_finish_reason_is_truncated(gemini: GeminiProvider, upstream: Upstream) -> None:
    await upstream.fault(GEMINI, "no_terminator")
    error, items = await failure(gemini)
    assert error.kind is K.TRUNCATED and "finishReason" in error.message
    assert text(items) == reply_text(GEMINI, PROMPT, REPLY_TOKENS)  # every word, still no reply


async def test_a_fault_with_a_probability_hits_its_share(
    gemini: GeminiProvider, upstream: Upstream
) -> None:
    await upstream.fault(GEMINI, "status", status=503, probability=0.5, seed=11)
    outcomes = []
    for _ in range(20):
        try:
            await drain(gemini)
            outcomes.append("ok")
        except ProviderError as exc:
            outcomes.append(exc.kind.value)
    (fault,) = upstream.sim.registry.list()
    assert outcomes.count("overloaded") == fault.hits
    assert 0 < fault.hits < 20
    assert set(outcomes) == {"ok", "overloaded"}


# --- shapes only a wall makes ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("finish", "kind"),
    [
        ("SAFETY", K.CONTENT_POLICY),
        ("RECITATION", K.CONTENT_POLICY),
        ("BLOCKLIST", K.CONTENT_POLICY),
        ("PROHIBITED_CONTENT", K.CONTENT_POLICY),
        ("SPII", K.CONTENT_POLICY),
        ("OTHER", K.SERVER_ERROR),
        ("MALFORMED_RESPONSE", K.MALFORMED),
    ],
)
async def test_finish_reasons_that_are_failures(finish: str, kind: ErrorKind) -> None:
    body = gemini_chunk("Sorry") + gemini_chunk("", finish, usage=True)
    async with Wall(body, end=True) as wall:
        provider = gemini_at(wall.url)
        error, items = await failure(provider)
        await provider.aclose()
    assert error.kind is kind
    assert f"finishReason {finish}" in error.message
    assert error.request_id == "resp_wall"
    assert items == [TextDelta("Sorry")]


async def test_a_blocked_prompt_is_a_content_policy_refusal() -> None:
    body = gemini_chunk(
        promptFeedback={"blockReason": "PROHIBITED_CONTENT", "blockReasonMessage": "nope"}
    )
    async with Wall(body, end=True) as wall:
        provider = gemini_at(wall.url)
        error, items = await failure(provider)
        await provider.aclose()
    assert error.kind is K.CONTENT_POLICY
    assert "blockReason PROHIBITED_CONTENT" in error.message and "nope" in error.message
    assert items == []


async def test_thoughts_are_not_the_reply_and_the_last_chunk_may_carry_text() -> None:
    thought = {"parts": [{"text": "thinking...", "thought": True}], "role": "model"}
    body = (
        gemini_chunk(content=thought)
        + gemini_chunk("Hello")
        + gemini_chunk(" world", "STOP", usage=True)
    )
    async with Wall(body, end=True) as wall:
        provider = gemini_at(wall.url)
        items = await drain(provider)
        await provider.aclose()
    assert items == [
        TextDelta("Hello"),
        TextDelta(" world"),
        Usage(4, 2, "resp_wall", stop_reason="STOP"),
    ]


async def test_our_key_and_base_url_win_over_the_sdk_environment(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", "key-from-the-environment")
    monkeypatch.setenv("GEMINI_API_KEY", "another-key-from-the-environment")
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", "http://127.0.0.1:9/elsewhere/")
    monkeypatch.setenv("GOOGLE_GENAI_USE_VERTEXAI", "true")
    monkeypatch.setenv("GOOGLE_GENAI_API_VERSION", "v1")
    monkeypatch.setenv("GOOGLE_GENAI_CLIENT_MODE", "replay")
    body = gemini_chunk("Hi", "STOP", usage=True)
    async with Wall(body, end=True) as wall:
        provider = GeminiProvider(api_key="the-key-settings-chose", base_url=f"{wall.url}/g/")
        items = await drain(provider)
        await provider.aclose()
    assert items[0] == TextDelta("Hi")
    (head,) = wall.heads
    assert head.startswith(
        "POST /g/v1beta/models/gemini-3.5-flash:streamGenerateContent?alt=sse HTTP/1.1"
    )
    assert "x-goog-api-key: the-key-settings-chose\r\n" in head
    assert "Using GOOGLE_API_KEY" not in caplog.text  # the SDK's untrue notice is dropped


async def test_the_tier_timeouts_reach_the_connection() -> None:
    provider = GeminiProvider(api_key="k", base_url="http://127.0.0.1:9/", timeouts=SHORT)
    request = provider._http.build_request("POST", "http://127.0.0.1/", timeout=None)
    for hook in provider._http.event_hooks["request"]:
        await hook(request)
    await provider.aclose()
    # The SDK sends one timeout (or none) for every phase; the hook puts the tier's back.
    assert request.extensions["timeout"] == {"connect": 1.0, "read": 0.5, "write": 0.5, "pool": 0.5}


OPEN = gemini_chunk("one") + gemini_chunk(" two")


async def test_closing_the_stream_closes_the_connection() -> None:
    async with Wall(OPEN) as wall:
        provider = gemini_at(wall.url)
        stream = provider.stream(REQUEST, GEMINI)
        assert await anext(stream) == TextDelta("one")
        await stream.aclose()  # type: ignore[attr-defined]
        await asyncio.wait_for(wall.hung_up.wait(), 1.0)
        await provider.aclose()


async def test_cancelling_the_consumer_closes_the_connection() -> None:
    async with Wall(OPEN) as wall:
        provider = gemini_at(wall.url)
        two_read = asyncio.Event()

        async def consume() -> None:
            count = 0
            async for _ in provider.stream(REQUEST, GEMINI):
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


@pytest.mark.parametrize(
    ("status", "code", "message", "details", "kind"),
    [
        # Gemini's per-minute limit speaks of "quota" too: the quota id decides, not the words.
        (
            "RESOURCE_EXHAUSTED",
            429,
            "You exceeded your current quota, please check your plan and billing details.",
            [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [{"quotaId": "GenerateRequestsPerMinutePerProjectPerModel"}],
                }
            ],
            K.RATE_LIMITED,
        ),
        ("RESOURCE_EXHAUSTED", 429, "Your prepayment credits are depleted.", [], K.QUOTA_EXHAUSTED),
        (
            "RESOURCE_EXHAUSTED",
            429,
            "Resource exhausted. Please try again later.",
            [],
            K.RATE_LIMITED,
        ),
        ("FAILED_PRECONDITION", 400, "User location is not supported for the API use.", [], K.AUTH),
        ("INVALID_ARGUMENT", 400, "Please enable billing on your project.", [], K.QUOTA_EXHAUSTED),
        ("Service Unavailable", 503, "<html>busy</html>", [], K.SERVER_ERROR),
        (None, 529, "overloaded", [], K.OVERLOADED),
    ],
)
def test_classify(
    status: str | None, code: int, message: str, details: list[dict[str, Any]], kind: ErrorKind
) -> None:
    assert classify(status, code, message, details) is kind
