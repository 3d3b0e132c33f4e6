"""The simulator's Gemini wire format: as the google-genai SDK sees it, and byte by byte."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import errors, types

from web.sim.replies import reply_text, tokenize
from web.sim.server import SimServer

from .conftest import FAST, bounded

GEMINI = "gemini-3.5-flash"
PROMPT = "What is a fallback chain?"
EXPECTED = reply_text(GEMINI, PROMPT, FAST.reply_tokens)
BODY = {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]}
CONFIG = types.GenerateContentConfig(
    automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    automatic_continuation=False,
)


@pytest.fixture
async def client(sim: SimServer) -> AsyncIterator[genai.Client]:
    made = genai.Client(
        api_key="test-key",
        vertexai=False,
        http_options=types.HttpOptions(
            base_url=f"{sim.url}/gemini/", api_version="v1beta", timeout=2000
        ),
    )
    yield made
    await made.aio.aclose()
    made.close()


def path(method: str, model: str = GEMINI) -> str:
    return f"/gemini/v1beta/models/{model}:{method}"


async def raw(
    sim: SimServer,
    method: str = "streamGenerateContent?alt=sse",
    body: Any = BODY,
    headers: dict[str, str] | None = None,
    model: str = GEMINI,
) -> httpx.Response:
    async with httpx.AsyncClient(timeout=2) as http:
        return await http.post(
            sim.url + path(method, model),
            headers={"x-goog-api-key": "k"} if headers is None else headers,
            content=body if isinstance(body, bytes) else json.dumps(body).encode(),
        )


def events(response: httpx.Response) -> list[dict[str, Any]]:
    frames = [f for f in response.text.split("\r\n\r\n") if f]
    assert all(f.startswith("data: ") for f in frames)
    return [json.loads(f.removeprefix("data: ")) for f in frames]


@bounded(5)
async def test_the_sdk_streams_the_deterministic_reply_and_its_usage(
    sim: SimServer, client: genai.Client
) -> None:
    stream = await client.aio.models.generate_content_stream(
        model=GEMINI,
        contents=[
            types.Content(role="user", parts=[types.Part(text="first question")]),
            types.Content(role="model", parts=[types.Part(text="first answer")]),
            types.Content(role="user", parts=[types.Part(text=PROMPT)]),
        ],
        config=CONFIG.model_copy(update={"system_instruction": "Be brief."}),
    )
    chunks = [chunk async for chunk in stream]
    texts = [c.text or "" for c in chunks]
    assert "".join(texts) == EXPECTED
    assert texts[:-1] == tokenize(EXPECTED) and texts[-1] == ""
    assert all(c.candidates and c.candidates[0].finish_reason is None for c in chunks[:-1])
    last = chunks[-1]
    assert last.candidates and last.candidates[0].finish_reason == types.FinishReason.STOP
    assert last.usage_metadata is not None
    assert last.usage_metadata.prompt_token_count == 2 + 2 + 2 + 5
    assert last.usage_metadata.candidates_token_count == len(tokenize(EXPECTED))
    assert {c.response_id for c in chunks} == {sim.log.entries()[0].request_id}
    (logged,) = sim.log.entries()
    assert (logged.provider, logged.model, logged.stream, logged.status) == (
        "gemini",
        GEMINI,
        True,
        200,
    )


@bounded(5)
async def test_the_sdk_gets_a_whole_reply_without_a_stream(
    sim: SimServer, client: genai.Client
) -> None:
    response = await client.aio.models.generate_content(
        model=GEMINI,
        contents=PROMPT,
        config=CONFIG.model_copy(update={"max_output_tokens": 5}),
    )
    assert response.text == "".join(tokenize(EXPECTED)[:5])
    assert response.candidates and response.candidates[0].finish_reason == "MAX_TOKENS"
    assert response.usage_metadata and response.usage_metadata.candidates_token_count == 5
    assert sim.log.entries()[0].stream is False


@bounded(5)
async def test_raw_stream_is_crlf_data_events_with_no_done(sim: SimServer) -> None:
    response = await raw(sim)
    assert response.headers["content-type"] == "text/event-stream"
    chunks = events(response)
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert "[DONE]" not in response.text
    assert all(c["modelVersion"] == GEMINI for c in chunks)


@bounded(5)
async def test_the_key_may_come_as_a_query_parameter(sim: SimServer) -> None:
    response = await raw(sim, "streamGenerateContent?alt=sse&key=k", headers={})
    assert response.status_code == 200


@bounded(5)
async def test_no_key_is_googles_403(sim: SimServer) -> None:
    response = await raw(sim, headers={})
    error = response.json()["error"]
    assert (response.status_code, error["code"], error["status"]) == (
        403,
        403,
        "PERMISSION_DENIED",
    )
    assert "unregistered callers" in error["message"]
    (logged,) = sim.log.entries()
    assert (logged.model, logged.outcome) == (GEMINI, "error:403")


@bounded(5)
async def test_unknown_model_is_a_404_not_found(sim: SimServer, client: genai.Client) -> None:
    with pytest.raises(errors.ClientError) as caught:
        await client.aio.models.generate_content(model="gemini-0", contents="x", config=CONFIG)
    assert (caught.value.code, caught.value.status) == (404, "NOT_FOUND")
    assert "models/gemini-0 is not found" in str(caught.value.message)


@bounded(5)
async def test_context_too_long_is_an_invalid_argument(sim: SimServer) -> None:
    sim.set_profile(GEMINI, context_window=3)
    response = await raw(sim)
    error = response.json()["error"]
    assert (response.status_code, error["status"]) == (400, "INVALID_ARGUMENT")
    assert error["message"] == (
        "The input token count (5) exceeds the maximum number of tokens allowed (3)."
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{nope", "Invalid JSON payload"),
        ({"contents": []}, "contents is not specified"),
        ({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}, "valid role"),
    ],
)
@bounded(5)
async def test_invalid_bodies_are_400s(sim: SimServer, body: Any, message: str) -> None:
    response = await raw(sim, body=body)
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]


@bounded(5)
async def test_streaming_without_alt_sse_says_how_to_ask(sim: SimServer) -> None:
    response = await raw(sim, "streamGenerateContent")
    assert response.status_code == 400 and "alt=sse" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "model_path", ["/gemini/v1beta/models/:generateContent", "/gemini/v1beta/models/m:embed"]
)
@bounded(5)
async def test_other_paths_are_not_model_calls(sim: SimServer, model_path: str) -> None:
    async with httpx.AsyncClient(timeout=2) as http:
        response = await http.post(sim.url + model_path, json=BODY)
    assert response.status_code == 404
    assert sim.log.entries() == []


@bounded(5)
async def test_a_429_names_its_quota_and_retry_delay(sim: SimServer) -> None:
    sim.registry.add({"model": GEMINI, "kind": "status", "status": 429, "retry_after": 43})
    response = await raw(sim)
    error = response.json()["error"]
    assert (response.status_code, error["status"]) == (429, "RESOURCE_EXHAUSTED")
    types_ = [d["@type"].rpartition(".")[2] for d in error["details"]]
    assert types_ == ["QuotaFailure", "RetryInfo"]
    assert error["details"][0]["violations"][0]["quotaId"].endswith("PerMinutePerProjectPerModel")
    assert error["details"][1]["retryDelay"] == "43s"
    assert "retry-after" not in response.headers  # Gemini says it in the body only


@bounded(5)
async def test_a_code_is_the_error_info_reason_of_other_statuses(sim: SimServer) -> None:
    sim.registry.add({"model": GEMINI, "kind": "status", "status": 400, "code": "API_KEY_INVALID"})
    error = (await raw(sim)).json()["error"]
    assert error["details"] == [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
        }
    ]


@bounded(5)
async def test_error_event_in_a_stream_and_without_one(sim: SimServer) -> None:
    sim.registry.add({"model": GEMINI, "kind": "error_event", "after_tokens": 2, "count": 2})
    streamed = await raw(sim)
    assert streamed.status_code == 200
    *texts, last = events(streamed)
    assert len(texts) == 2
    assert last == {
        "error": {
            "code": 503,
            "message": "The model is overloaded. Please try again later.",
            "status": "UNAVAILABLE",
        }
    }
    whole = await raw(sim, "generateContent")
    assert (whole.status_code, whole.json()["error"]["status"]) == (503, "UNAVAILABLE")


@bounded(5)
async def test_no_terminator_drops_the_finish_reason_chunk(sim: SimServer) -> None:
    sim.registry.add({"model": GEMINI, "kind": "no_terminator", "tail": "keep"})
    chunks = events(await raw(sim))
    assert "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks) == EXPECTED
    assert all("finishReason" not in c["candidates"][0] for c in chunks)


@bounded(5)
async def test_malformed_and_cut(sim: SimServer) -> None:
    sim.registry.add({"model": GEMINI, "kind": "malformed", "n": 1, "count": 1})
    first = (await raw(sim)).text.split("\r\n\r\n")[0]
    with pytest.raises(json.JSONDecodeError):
        json.loads(first.removeprefix("data: "))
    sim.registry.add({"model": GEMINI, "kind": "cut", "after_tokens": 2, "count": 1})
    with pytest.raises(httpx.RemoteProtocolError):
        await raw(sim)
