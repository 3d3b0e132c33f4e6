"""The control routes, on the raw server's port and as the ASGI app mounted at /_sim."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import anthropic
import httpx
import openai
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from web.sim.fault_registry import FaultRegistry
from web.sim.limits import (
    MAX_AFTER_TOKENS,
    MAX_CONTEXT_WINDOW,
    MAX_CONTROL_BODY_BYTES,
    MAX_COUNT,
    MAX_DELAY_S,
    MAX_DOWN_S,
    MAX_EVENT_INDEX,
    MAX_FAULTS,
    MAX_FIRST_TOKEN_S,
    MAX_MODEL_CHARS,
    MAX_PROFILES,
    MAX_REPLY_TOKENS,
    MAX_RETRY_AFTER_S,
    MAX_SEED,
    MAX_TEXT_CHARS,
    MAX_TOKENS_PER_S,
    shown,
)
from web.sim.server import SimServer, control_app

from .clock import FakeClock
from .conftest import FAST, GPT, HAIKU, SONNET, bounded, claude, gpt

JSON = {"content-type": "application/json"}


@pytest.fixture
async def raw(sim: SimServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sim.url, timeout=2) as client:
        yield client


def _mounted_client(sim: SimServer) -> httpx.AsyncClient:
    app = Starlette(routes=[Mount("/_sim", app=control_app(sim))])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app/_sim")


@pytest.fixture
async def mounted(sim: SimServer) -> AsyncIterator[httpx.AsyncClient]:
    async with _mounted_client(sim) as client:
        yield client


@pytest.fixture(params=["raw", "mounted"])
async def either(
    sim: SimServer, request: pytest.FixtureRequest
) -> AsyncIterator[httpx.AsyncClient]:
    """The control routes on the raw server's port, then as the mounted app."""
    if request.param == "raw":
        client = httpx.AsyncClient(base_url=sim.url, timeout=2)
    else:
        client = _mounted_client(sim)
    async with client:
        yield client


@bounded(5)
async def test_post_fault_returns_201_with_id_and_it_hits_requests(
    sim: SimServer, raw: httpx.AsyncClient
) -> None:
    response = await raw.post(
        "/faults", json={"model": HAIKU, "kind": "status", "status": 529, "count": 1}
    )
    assert response.status_code == 201
    fault = response.json()
    assert fault["id"] and fault["kind"] == "status" and fault["status"] == 529
    assert fault["count"] == 1
    assert (await raw.get("/faults")).json() == [fault]
    with pytest.raises(anthropic.OverloadedError):
        await claude(sim).messages.create(
            model=HAIKU, max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert (await raw.get("/faults")).json() == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"model": "m", "kind": "explode"}', '"kind" must be one of'),
        (b'{"model": "m", "kind": "cut", "after_tokens": -1}', '"after_tokens" must be >= 0'),
        (b'{"kind": "reset"}', '"model" is required'),
        (b'{"model": "m", "kind": "reset", "probability": -1}', '"probability" must be >= 0'),
        (b'{"model": "m", "kind": "reset", "seed": 1}', '"seed" only applies with'),
    ],
)
@bounded(5)
async def test_bad_faults_are_400_with_a_clear_message(
    raw: httpx.AsyncClient, body: bytes, message: str
) -> None:
    response = await raw.post("/faults", content=body, headers=JSON)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert (await raw.get("/faults")).json() == []


@bounded(5)
async def test_delete_one_and_delete_all(raw: httpx.AsyncClient) -> None:
    a = (await raw.post("/faults", json={"model": "*", "kind": "reset"})).json()
    b = (await raw.post("/faults", json={"model": "*", "kind": "hang"})).json()
    assert (await raw.delete(f"/faults/{a['id']}")).json() == {"deleted": a["id"]}
    assert (await raw.delete(f"/faults/{a['id']}")).status_code == 404
    assert [f["id"] for f in (await raw.get("/faults")).json()] == [b["id"]]
    await raw.post("/faults", json={"model": "*", "kind": "reset"})
    assert (await raw.delete("/faults")).json() == {"deleted": 2}
    assert (await raw.get("/faults")).json() == []


@bounded(5)
async def test_request_log_counts_attempts_per_model_and_clears(
    sim: SimServer, raw: httpx.AsyncClient
) -> None:
    await raw.post("/faults", json={"model": SONNET, "kind": "status", "status": 429, "count": 1})
    for model in (SONNET, HAIKU):
        with contextlib.suppress(anthropic.RateLimitError):
            stream = await claude(sim).messages.create(
                model=model, max_tokens=5, messages=[{"role": "user", "content": "x"}], stream=True
            )
            async for _event in stream:
                pass
    await gpt(sim).chat.completions.create(model=GPT, messages=[{"role": "user", "content": "x"}])
    entries = (await raw.get("/requests")).json()
    assert [(e["provider"], e["model"], e["stream"], e["outcome"]) for e in entries] == [
        ("anthropic", SONNET, True, "status"),
        ("anthropic", HAIKU, True, "ok"),
        ("openai", GPT, False, "ok"),
    ]
    assert all(isinstance(e["time"], float) for e in entries)
    assert [e["model"] for e in (await raw.get("/requests", params={"model": HAIKU})).json()] == [
        HAIKU
    ]
    assert (await raw.delete("/requests")).json() == {"deleted": 3}
    assert (await raw.get("/requests")).json() == []


@bounded(5)
async def test_models_get_and_post(sim: SimServer, raw: httpx.AsyncClient) -> None:
    models = (await raw.get("/models")).json()
    assert {HAIKU, SONNET, GPT} <= set(models["models"])
    response = await raw.post("/models", json={"model": HAIKU, "reply_tokens": 7})
    assert response.status_code == 200
    assert response.json()["reply_tokens"] == 7
    assert sim.profiles.get(HAIKU).reply_tokens == 7
    star = await raw.post(
        "/models", json={"model": "*", "first_token_s": 0, "tokens_per_s": 4000, "reply_tokens": 9}
    )
    assert star.status_code == 200
    assert all(p["reply_tokens"] == 9 for p in (await raw.get("/models")).json()["models"].values())
    new = await raw.post("/models", json={"model": "my-new-model", "context_window": 5})
    assert new.json()["context_window"] == 5
    assert sim.profiles.knows("my-new-model")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"reply_tokens": 5}, '"model" is required'),
        ({"model": "*", "speed": 5}, "unknown profile field(s) speed"),
        ({"model": "*", "tokens_per_s": 0}, "tokens_per_s must be > 0"),
        ({"model": "*", "reply_tokens": "many"}, "reply_tokens must be a whole number"),
    ],
)
@bounded(5)
async def test_bad_model_settings_are_400(
    raw: httpx.AsyncClient, body: dict[str, object], message: str
) -> None:
    response = await raw.post("/models", json=body)
    assert response.status_code == 400
    assert message in response.json()["error"]


@bounded(5)
async def test_unknown_routes_and_methods(raw: httpx.AsyncClient) -> None:
    assert (await raw.get("/nope")).status_code == 404
    assert (await raw.put("/faults", json={})).status_code == 405
    assert (await raw.get("/anthropic/v1/messages")).status_code == 405


@bounded(5)
async def test_the_mounted_app_shares_state_and_json_with_the_raw_server(
    sim: SimServer, raw: httpx.AsyncClient, mounted: httpx.AsyncClient
) -> None:
    created = await mounted.post(
        "/faults", json={"model": GPT, "kind": "status", "status": 503, "count": 1}
    )
    assert created.status_code == 201
    assert (await raw.get("/faults")).json() == [created.json()]
    assert (await mounted.get("/faults")).json() == [created.json()]
    bad = await mounted.post("/faults", content=b"[", headers=JSON)
    raw_bad = await raw.post("/faults", content=b"[", headers=JSON)
    assert (bad.status_code, bad.json()) == (raw_bad.status_code, raw_bad.json())

    await claude(sim).messages.create(
        model=HAIKU, max_tokens=5, messages=[{"role": "user", "content": "x"}]
    )
    with pytest.raises(openai.InternalServerError, match="503"):
        await gpt(sim).chat.completions.create(
            model=GPT, messages=[{"role": "user", "content": "x"}]
        )
    assert (await mounted.get("/requests")).json() == (await raw.get("/requests")).json()
    assert [e["outcome"] for e in (await mounted.get("/requests")).json()] == ["ok", "status"]

    await mounted.post("/models", json={"model": "*", "reply_tokens": 3})
    assert (await raw.get("/models")).json() == (await mounted.get("/models")).json()
    assert (await mounted.delete("/requests")).json() == {"deleted": 2}
    assert sim.log.count() == 0


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/faults", "text/plain"),
        ("/faults", "application/x-www-form-urlencoded"),
        ("/faults", "multipart/form-data; boundary=x"),
        ("/faults", None),
        ("/models", "text/plain;charset=UTF-8"),
    ],
)
@bounded(5)
async def test_a_post_that_is_not_declared_json_is_415_and_changes_nothing(
    sim: SimServer,
    either: httpx.AsyncClient,
    path: str,
    content_type: str | None,
) -> None:
    # What a cross-site page can send without a CORS preflight: a "simple" POST whose body is JSON.
    http = either
    body = (
        b'{"model": "*", "kind": "status", "status": 429}'
        if path == "/faults"
        else b'{"model": "*", "reply_tokens": 1}'
    )
    headers = {"content-type": content_type} if content_type else {}
    before = sim.profiles.to_json()
    response = await http.post(path, content=body, headers=headers)
    assert response.status_code == 415
    assert "content-type: application/json" in response.json()["error"]
    assert sim.registry.list() == []
    assert sim.profiles.to_json() == before


@bounded(5)
async def test_json_with_a_charset_is_accepted_and_a_delete_with_a_body_needs_json(
    either: httpx.AsyncClient,
) -> None:
    http = either
    created = await http.post(
        "/faults",
        content=b'{"model": "*", "kind": "reset"}',
        headers={"content-type": "Application/JSON; charset=utf-8"},
    )
    assert created.status_code == 201
    refused = await http.request(
        "DELETE", "/faults", content=b"x", headers={"content-type": "text/plain"}
    )
    assert refused.status_code == 415
    assert len((await http.get("/faults")).json()) == 1
    assert (await http.delete("/faults")).json() == {"deleted": 1}


@pytest.mark.parametrize("route", ["raw", "mounted"])
@bounded(5)
async def test_a_flap_set_over_either_control_api_heals_on_the_servers_clock(route: str) -> None:
    clock = FakeClock()
    async with SimServer(default_profile=FAST, clock=clock) as sim:
        client = httpx.AsyncClient(base_url=sim.url) if route == "raw" else _mounted_client(sim)
        async with client as http:
            created = await http.post("/faults", json={"model": GPT, "kind": "flap", "down_s": 30})
            assert created.status_code == 201
            clock.advance(29.5)
            assert [f["id"] for f in (await http.get("/faults")).json()] == [created.json()["id"]]
            with pytest.raises(openai.InternalServerError, match="503"):
                await gpt(sim).chat.completions.create(
                    model=GPT, messages=[{"role": "user", "content": "x"}]
                )
            clock.advance(0.5)
            assert (await http.get("/faults")).json() == []
            await gpt(sim).chat.completions.create(
                model=GPT, messages=[{"role": "user", "content": "x"}]
            )
        assert [e.outcome for e in sim.log.entries()] == ["flap", "ok"]


def test_a_clock_goes_with_the_registry_it_belongs_to() -> None:
    with pytest.raises(ValueError, match="pass the clock to the FaultRegistry"):
        SimServer(registry=FaultRegistry(), clock=FakeClock())


PAST_BOUNDS = [
    ("/models", {"model": "*", "reply_tokens": 1_000_000}, "reply_tokens", MAX_REPLY_TOKENS),
    ("/models", {"model": "*", "first_token_s": 601}, "first_token_s", MAX_FIRST_TOKEN_S),
    ("/models", {"model": "*", "tokens_per_s": 1e6}, "tokens_per_s", MAX_TOKENS_PER_S),
    ("/models", {"model": "*", "context_window": 10**9}, "context_window", MAX_CONTEXT_WINDOW),
    ("/faults", {"model": "m", "kind": "stall", "delay_s": 10**6}, "delay_s", MAX_DELAY_S),
    ("/faults", {"model": "m", "kind": "slow_first_token", "delay_s": 601}, "delay_s", MAX_DELAY_S),
    ("/faults", {"model": "m", "kind": "flap", "down_s": 10**7}, "down_s", MAX_DOWN_S),
    (
        "/faults",
        {"model": "m", "kind": "cut", "after_tokens": 10**6},
        "after_tokens",
        MAX_AFTER_TOKENS,
    ),
    ("/faults", {"model": "m", "kind": "malformed", "n": 10**6}, "n", MAX_EVENT_INDEX),
    ("/faults", {"model": "m", "kind": "reset", "count": 10**9}, "count", MAX_COUNT),
    (
        "/faults",
        {"model": "m", "kind": "status", "status": 429, "retry_after": 10**6},
        "retry_after",
        MAX_RETRY_AFTER_S,
    ),
    ("/faults", {"model": "m", "kind": "status", "status": 600}, "status", 599),
    ("/faults", {"model": "m", "kind": "flap", "down_s": 1, "status": 200}, "status", 599),
    (
        "/faults",
        {"model": "m", "kind": "status", "status": 500, "message": "x" * 1001},
        "message",
        MAX_TEXT_CHARS,
    ),
    ("/faults", {"model": "m" * 201, "kind": "reset"}, "model", MAX_MODEL_CHARS),
    (
        "/faults",
        {"model": "m", "kind": "reset", "probability": 0.5, "seed": 2**64},
        "seed",
        MAX_SEED,
    ),
    ("/faults", {"model": "m", "kind": "no_terminator", "hold_s": 601}, "hold_s", MAX_DELAY_S),
    ("/faults", {"model": "m", "kind": "reset", "probability": 1.01}, "probability", 1),
    ("/models", {"model": "m" * 201, "reply_tokens": 5}, "model", MAX_MODEL_CHARS),
]


@pytest.mark.parametrize(("path", "body", "name", "bound"), PAST_BOUNDS)
@bounded(5)
async def test_values_past_a_bound_are_422_naming_the_field_and_the_bound(
    either: httpx.AsyncClient, path: str, body: dict[str, object], name: str, bound: float
) -> None:
    before = (await either.get(path)).json()
    response = await either.post(path, json=body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert name in error and shown(bound) in error, error
    assert (await either.get(path)).json() == before


@bounded(5)
async def test_a_bound_itself_is_accepted(either: httpx.AsyncClient) -> None:
    response = await either.post("/models", json={"model": "*", "reply_tokens": MAX_REPLY_TOKENS})
    assert response.status_code == 200
    fault = {"model": "m", "kind": "stall", "delay_s": MAX_DELAY_S, "count": MAX_COUNT}
    assert (await either.post("/faults", json=fault)).status_code == 201


@bounded(10)
async def test_faults_and_own_profiles_are_limited_in_number(
    sim: SimServer, either: httpx.AsyncClient
) -> None:
    for index in range(MAX_FAULTS):
        sim.registry.add({"model": f"m{index}", "kind": "reset"})
    response = await either.post("/faults", json={"model": "m", "kind": "reset"})
    assert response.status_code == 422
    assert f"at most {MAX_FAULTS} faults" in response.json()["error"]
    for index in range(MAX_PROFILES):
        sim.set_profile(f"model-{index}", reply_tokens=5)
    response = await either.post("/models", json={"model": "one-more", "reply_tokens": 5})
    assert response.status_code == 422
    assert f"at most {MAX_PROFILES} models" in response.json()["error"]
    assert (await either.post("/models", json={"model": "*", "reply_tokens": 5})).status_code == 200


@bounded(5)
async def test_a_body_over_the_limit_is_413(either: httpx.AsyncClient) -> None:
    body = b'{"model": "m", "kind": "reset", "pad": "' + b"x" * MAX_CONTROL_BODY_BYTES + b'"}'
    response = await either.post("/faults", content=body, headers=JSON)
    assert response.status_code == 413
    assert str(MAX_CONTROL_BODY_BYTES) in response.json()["error"]


@bounded(5)
async def test_the_raw_servers_control_routes_refuse_a_foreign_host(
    raw: httpx.AsyncClient,
) -> None:
    """DNS rebinding: a page whose name now points at 127.0.0.1 sends that name as Host."""
    refused = await raw.post(
        "/faults", json={"model": "*", "kind": "reset"}, headers={"host": "evil.example"}
    )
    assert refused.status_code == 421
    assert "does not name this server" in refused.json()["error"]
    assert (await raw.get("/faults", headers={"host": "localhost:8100"})).json() == []
