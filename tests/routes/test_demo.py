"""The outage panel sets and clears faults through the simulator's own API."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from fastapi import FastAPI

from web.app import create_app
from web.routes.demo import ALL_DOWN_LABEL
from web.settings import Settings
from web.sim.access import NOT_LOOPBACK
from web.state import AppState

from .conftest import csrf_of
from support.chat import ChatClient, live_client  # noqa: F401  (`client`: a browser session, not the in-process one)

if TYPE_CHECKING:
    from tests.conftest import LiveApp

SONNET = "claude-sonnet-4-6"
HAIKU = "claude-haiku-4-5-20251001"
GPT = "gpt-5.5"


def test_the_demo_notice_and_panel_are_on_the_page(client: ChatClient) -> None:
    page = client.http.get("/").text
    assert "demo: simulated models" in page
    assert 'data-testid="outage-panel"' in page
    for label in ("rate limited", "overloaded", "hang", "cut mid-reply", "healthy again"):
        assert label in page


def test_each_mode_sets_the_matching_fault(client: ChatClient, live_app: LiveApp) -> None:
    expected = {
        "rate_limited": ("status", 429),
        "overloaded": ("status", 529),
        "hang": ("hang", None),
        "cut": ("cut", None),
    }
    for mode, (kind, status) in expected.items():
        reply = client.post("/demo/outage", {"tier": "sonnet", "mode": mode})
        assert reply.status_code == 200
        assert 'aria-pressed="true">' in reply.text
        faults = [f for f in live_app.faults() if f["model"] == SONNET]
        assert len(faults) == 1, faults  # one mode per tier: the previous one was replaced
        assert faults[0]["kind"] == kind and faults[0].get("status") == status
        assert faults[0]["count"] is None
    client.post("/demo/outage", {"tier": "sonnet", "mode": "healthy"})
    assert live_app.faults() == []


def test_openai_overload_is_a_503(client: ChatClient, live_app: LiveApp) -> None:
    client.post("/demo/outage", {"tier": "openai", "mode": "overloaded"})
    (fault,) = live_app.faults()
    assert (fault["model"], fault["status"]) == (GPT, 503)


def test_reset_and_bad_input(client: ChatClient, live_app: LiveApp) -> None:
    client.post("/demo/outage", {"tier": "haiku", "mode": "hang"})
    assert client.post("/demo/outage", {"tier": "nope", "mode": "hang"}).status_code == 422
    assert client.post("/demo/outage", {"tier": "haiku", "mode": "explode"}).status_code == 422
    assert client.post("/demo/outage/reset").status_code == 200
    assert live_app.faults() == []


def test_reset_all_heals_every_tier_and_leaves_other_models_alone(
    client: ChatClient, live_app: LiveApp
) -> None:
    client.post("/demo/outage", {"tier": "sonnet", "mode": "rate_limited"})
    live_app.set_fault("*", "status", status=500)  # set with curl: it hits every tier too
    other = live_app.set_fault("some-other-model", "hang")  # a shared simulator's other user
    panel = client.http.get("/").text
    assert 'data-testid="outage-count">3 down<' in panel  # the "*" fault shows on each tier
    assert "Reset all" in panel and 'action="/demo/outage/reset"' in panel
    reset = client.post("/demo/outage/reset")
    assert reset.status_code == 200
    assert 'data-testid="outage-count">all healthy<' in reset.text
    assert [f["id"] for f in live_app.faults()] == [other["id"]]


def test_all_tiers_down_overloads_every_tiers_synchronous_api_only(
    client: ChatClient, live_app: LiveApp
) -> None:
    client.post("/demo/outage", {"tier": "sonnet", "mode": "hang"})
    batches = live_app.set_fault(SONNET, "batch_expired")  # set with curl, on the batches API
    before = client.http.get("/").text
    assert ALL_DOWN_LABEL in before and 'action="/demo/outage/all-down"' in before
    # A batch fault is not the tier's mode: only its synchronous API is the panel's.
    assert 'data-testid="outage-count">1 down<' in before

    down = client.post("/demo/outage/all-down")
    assert down.status_code == 200
    assert 'data-testid="outage-count">3 down<' in down.text
    assert re.findall(r'data-testid="tier-state">([^<]+)<', down.text) == ["overloaded"] * 3
    sync = [f for f in live_app.faults() if f["id"] != batches["id"]]
    assert sorted((f["model"], f["kind"], f["status"], f["count"]) for f in sync) == [
        (HAIKU, "status", 529, None),
        (SONNET, "status", 529, None),  # the hang was replaced
        (GPT, "status", 503, None),
    ]
    assert all("api" not in f for f in sync)  # the simulator lists a synchronous fault so
    assert [f["api"] for f in live_app.faults() if f["id"] == batches["id"]] == ["batches"]

    # One tier healed by hand leaves the batches alone too.
    client.post("/demo/outage", {"tier": "sonnet", "mode": "healthy"})
    assert {f["model"] for f in live_app.faults() if "api" not in f} == {HAIKU, GPT}
    assert batches["id"] in [f["id"] for f in live_app.faults()]

    reset = client.post("/demo/outage/reset")  # heals every tier, both APIs
    assert 'data-testid="outage-count">all healthy<' in reset.text
    assert live_app.faults() == []


def test_all_tiers_down_works_without_javascript(client: ChatClient, live_app: LiveApp) -> None:
    down = client.http.post(
        "/demo/outage/all-down",
        data={"csrf_token": client.csrf},
        headers={"referer": f"{live_app.url}/"},
    )
    assert (down.status_code, down.headers["location"]) == (303, f"{live_app.url}/")
    assert len(live_app.faults()) == 3
    assert client.http.post("/demo/outage/all-down", data={}).status_code == 403  # no CSRF token
    assert len(live_app.faults()) == 3


def test_reset_all_works_without_javascript(client: ChatClient, live_app: LiveApp) -> None:
    client.post("/demo/outage", {"tier": "haiku", "mode": "hang"})
    reset = client.http.post(
        "/demo/outage/reset",
        data={"csrf_token": client.csrf},
        headers={"referer": f"{live_app.url}/"},
    )
    assert (reset.status_code, reset.headers["location"]) == (303, f"{live_app.url}/")
    assert live_app.faults() == []


# In process, with a chosen client address: no packet goes anywhere but loopback.
@pytest.fixture
async def demo_app(tmp_path: Path) -> AsyncIterator[FastAPI]:
    app = create_app(Settings.from_env({"UNDERSTUDY_DATA_DIR": str(tmp_path / "data")}))
    async with app.router.lifespan_context(app):
        yield app


def _visitor(app: FastAPI, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000")


async def test_the_panel_is_for_loopback_visitors_only(demo_app: FastAPI) -> None:
    async with _visitor(demo_app, "127.0.0.1") as local:
        assert 'data-testid="outage-panel"' in (await local.get("/")).text
    async with _visitor(demo_app, "10.0.0.5") as outsider:
        page = (await outsider.get("/")).text
        assert "demo: simulated models" in page
        assert 'data-testid="outage-panel"' not in page
        for path, form in (
            ("/demo/outage", {"tier": "sonnet", "mode": "hang"}),
            ("/demo/outage/reset", {}),
            ("/demo/outage/all-down", {}),
        ):
            reply = await outsider.post(path, data={"csrf_token": csrf_of(page), **form})
            assert reply.status_code == 403
            assert NOT_LOOPBACK in reply.text
    sim = AppState.of(demo_app).sim_client
    assert sim is not None
    assert (await sim.get("/faults")).json() == []  # nothing was set


async def test_the_panel_refuses_a_host_that_is_not_loopback(demo_app: FastAPI) -> None:
    async with _visitor(demo_app, "127.0.0.1") as rebound:
        page = (await rebound.get("/", headers={"host": "evil.example"})).text
        assert 'data-testid="outage-panel"' not in page
        reply = await rebound.post(
            "/demo/outage",
            data={"csrf_token": csrf_of(page), "tier": "sonnet", "mode": "hang"},
            headers={"host": "evil.example"},
        )
    assert reply.status_code == 421


async def test_the_default_chains_gemini_tier_is_in_the_panel_and_answers(
    demo_app: FastAPI,
) -> None:
    async with _visitor(demo_app, "127.0.0.1") as local:
        page = (await local.get("/")).text
        tiers = re.findall(r'data-testid="outage-(\w+)"', page)
        assert [t for t in tiers if t not in ("panel", "count", "reset")] == [
            "sonnet",
            "haiku",
            "openai",
            "gemini",
        ]
        reply = await local.post(
            "/demo/outage",
            data={"csrf_token": csrf_of(page), "tier": "gemini", "mode": "overloaded"},
            headers={"hx-request": "true"},
        )
        assert reply.status_code == 200
    sim = AppState.of(demo_app).sim_client
    assert sim is not None
    (fault,) = (await sim.get("/faults")).json()
    assert (fault["model"], fault["status"]) == ("gemini-3.5-flash", 503)  # UNAVAILABLE
    # The embedded simulator knows the Gemini tier's model: the tier is not a 404 in the demo.
    models = (await sim.get("/models")).json()["models"]
    assert models["gemini-3.5-flash"]["context_window"] == 1_048_576


async def test_with_every_tier_down_the_sync_apis_fail_and_message_batches_still_answer(
    demo_app: FastAPI,
) -> None:
    async with _visitor(demo_app, "127.0.0.1") as local:
        page = (await local.get("/")).text
        reply = await local.post(
            "/demo/outage/all-down",
            data={"csrf_token": csrf_of(page)},
            headers={"hx-request": "true"},
        )
    assert reply.status_code == 200
    assert 'data-testid="outage-count">4 down<' in reply.text  # the default chain: 4 tiers
    sim_url = AppState.of(demo_app).settings.sim_url
    assert sim_url is not None
    ask = {"max_tokens": 50, "messages": [{"role": "user", "content": "Hi"}]}
    keys = {"x-api-key": "k", "authorization": "Bearer k", "x-goog-api-key": "k"}
    async with httpx.AsyncClient(base_url=sim_url, headers=keys) as sim:
        for model in (SONNET, HAIKU):
            sync = await sim.post("/anthropic/v1/messages", json={"model": model, **ask})
            assert sync.status_code == 529, sync.text
        gpt = await sim.post("/openai/v1/chat/completions", json={"model": GPT, **ask})
        assert gpt.status_code == 503, gpt.text
        gemini = await sim.post(
            "/gemini/v1beta/models/gemini-3.5-flash:generateContent",
            json={"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]},
        )
        assert gemini.status_code == 503, gemini.text
        batch = await sim.post(
            "/anthropic/v1/messages/batches",
            json={"requests": [{"custom_id": "turn-1", "params": {"model": SONNET, **ask}}]},
        )
        assert batch.status_code == 200, batch.text
        assert batch.json()["type"] == "message_batch"  # created: the batches are not down
