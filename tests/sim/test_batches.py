"""The simulator's Message Batches endpoints on the wire: shapes, validation, the clock, faults."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from web.sim.batches import EXPIRE_S
from web.sim.faults import FaultError, parse_fault
from web.sim.limits import MAX_BATCH_DELAY_S, MAX_BATCH_REQUESTS, shown
from web.sim.replies import reply_text
from web.sim.server import SimServer

from .clock import FakeClock
from .conftest import FAST, HAIKU, SONNET, bounded

BATCHES = "/anthropic/v1/messages/batches"
KEY = {"x-api-key": "test-key"}
PROMPT = "Summarise the fallback chain."


def params(model: str = HAIKU, prompt: str = PROMPT, **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "max_tokens": 500,
        "messages": [{"role": "user", "content": prompt}],
        **extra,
    }


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def sim(clock: FakeClock) -> AsyncIterator[SimServer]:
    server = SimServer(default_profile=FAST, profiles={}, clock=clock)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def http(sim: SimServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sim.url, headers=KEY, timeout=5) as client:
        yield client


async def create(http: httpx.AsyncClient, *requests: dict[str, Any]) -> dict[str, Any]:
    response = await http.post(BATCHES, json={"requests": list(requests)})
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def results(http: httpx.AsyncClient, batch_id: str) -> dict[str, dict[str, Any]]:
    batch = (await http.get(f"{BATCHES}/{batch_id}")).json()
    response = await http.get(batch["results_url"])
    assert response.status_code == 200, response.text
    lines = [json.loads(line) for line in response.text.splitlines()]
    return {line["custom_id"]: line["result"] for line in lines}


@bounded(10)
async def test_a_batch_is_in_progress_until_the_clock_passes_batch_delay_s(
    sim: SimServer, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    sim.set_profile(HAIKU, batch_delay_s=30)
    batch = await create(http, {"custom_id": "t1", "params": params()})
    assert batch["id"].startswith("msgbatch_")
    assert batch["type"] == "message_batch"
    assert batch["processing_status"] == "in_progress"
    assert batch["request_counts"] == {
        "processing": 1,
        "succeeded": 0,
        "errored": 0,
        "canceled": 0,
        "expired": 0,
    }
    assert batch["results_url"] is None and batch["ended_at"] is None
    early = await http.get(f"{BATCHES}/{batch['id']}/results")
    assert early.status_code == 400
    assert early.json()["error"]["type"] == "invalid_request_error"

    clock.advance(29.9)
    assert (await http.get(f"{BATCHES}/{batch['id']}")).json()["processing_status"] == "in_progress"
    clock.advance(0.1)
    ended = (await http.get(f"{BATCHES}/{batch['id']}")).json()
    assert ended["processing_status"] == "ended"
    assert ended["request_counts"]["succeeded"] == 1 and ended["request_counts"]["processing"] == 0
    assert ended["results_url"] == f"{sim.url}{BATCHES}/{batch['id']}/results"
    # Times on the wire follow the injected clock: ended_at is exactly created_at + 30 s.
    created, done = (_seconds(batch["created_at"]), _seconds(ended["ended_at"]))
    assert done - created == pytest.approx(30, abs=0.01)
    assert _seconds(batch["expires_at"]) - created == pytest.approx(EXPIRE_S, abs=0.01)


@bounded(10)
async def test_results_are_the_messages_endpoints_deterministic_reply(
    sim: SimServer, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    batch = await create(
        http,
        {"custom_id": "a", "params": params()},
        {"custom_id": "b", "params": params(SONNET, "another question")},
    )
    clock.advance(FAST.batch_delay_s)
    got = await results(http, batch["id"])
    assert set(got) == {"a", "b"}
    message = got["a"]["message"]
    assert got["a"]["type"] == "succeeded"
    assert message["type"] == "message" and message["model"] == HAIKU
    assert message["id"].startswith("msg_01") and message["stop_reason"] == "end_turn"
    assert message["content"] == [
        {"type": "text", "text": reply_text(HAIKU, PROMPT, FAST.reply_tokens)}
    ]
    sync = (await http.post("/anthropic/v1/messages", json=params())).json()
    assert (message["content"], message["usage"]) == (sync["content"], sync["usage"])
    assert got["b"]["message"]["content"][0]["text"] == reply_text(
        SONNET, "another question", FAST.reply_tokens
    )
    # The same results on every download, message ids included.
    assert await results(http, batch["id"]) == got


@bounded(10)
async def test_invalid_params_end_as_errored_results_not_a_failed_batch(
    http: httpx.AsyncClient, clock: FakeClock
) -> None:
    batch = await create(
        http,
        {"custom_id": "ok", "params": params()},
        {"custom_id": "no-tokens", "params": {"model": HAIKU, "messages": []}},
        {"custom_id": "unknown", "params": params("claude-nonexistent")},
        {"custom_id": "long", "params": params(prompt="word " * 2000)},
    )
    clock.advance(FAST.batch_delay_s)
    got = await results(http, batch["id"])
    assert got["ok"]["type"] == "succeeded"
    for custom_id, error_type in [
        ("no-tokens", "invalid_request_error"),
        ("unknown", "not_found_error"),
        ("long", "invalid_request_error"),
    ]:
        assert got[custom_id]["type"] == "errored"
        assert got[custom_id]["error"]["type"] == "error"
        assert got[custom_id]["error"]["error"]["type"] == error_type
    assert "prompt is too long" in got["long"]["error"]["error"]["message"]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({}, "requests: Field required"),
        ({"requests": []}, "at least 1 request"),
        (
            {"requests": [{"custom_id": "x", "params": params()}] * 2},
            "requests.1.custom_id: duplicate custom_id 'x'",
        ),
        ({"requests": [{"custom_id": "bad id!", "params": params()}]}, "requests.0.custom_id"),
        ({"requests": [{"custom_id": "x"}]}, "requests.0.params: Field required"),
        ({"requests": ["x"]}, "requests.0: must be an object"),
        (
            {
                "requests": [
                    {"custom_id": f"r{i}", "params": params()}
                    for i in range(MAX_BATCH_REQUESTS + 1)
                ]
            },
            f"at most {MAX_BATCH_REQUESTS} requests",
        ),
    ],
)
@bounded(10)
async def test_a_bad_batch_is_refused_in_anthropics_error_format(
    sim: SimServer, http: httpx.AsyncClient, body: dict[str, Any], says: str
) -> None:
    response = await http.post(BATCHES, json=body)
    assert response.status_code == 400
    data = response.json()
    assert data["type"] == "error" and data["error"]["type"] == "invalid_request_error"
    assert says in data["error"]["message"]
    assert response.headers["request-id"] == data["request_id"]
    assert (await http.get(BATCHES)).json()["data"] == []  # nothing was stored


@bounded(10)
async def test_every_batch_route_needs_a_key_and_unknown_ids_are_404(sim: SimServer) -> None:
    async with httpx.AsyncClient(base_url=sim.url, timeout=5) as anonymous:
        response = await anonymous.post(BATCHES, json={"requests": []})
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "authentication_error"
        assert (await anonymous.get(BATCHES)).status_code == 401
    async with httpx.AsyncClient(base_url=sim.url, headers=KEY, timeout=5) as http:
        missing = await http.get(f"{BATCHES}/msgbatch_nope")
        assert missing.status_code == 404
        assert missing.json()["error"]["type"] == "not_found_error"
        assert (await http.post(f"{BATCHES}/msgbatch_nope/cancel")).status_code == 404
        assert (await http.delete(BATCHES)).status_code == 405


@bounded(10)
async def test_cancel_then_the_next_look_finds_it_ended_with_canceled_results(
    http: httpx.AsyncClient, clock: FakeClock
) -> None:
    batch = await create(
        http, {"custom_id": "a", "params": params()}, {"custom_id": "b", "params": params()}
    )
    clock.advance(1)
    canceling = (await http.post(f"{BATCHES}/{batch['id']}/cancel")).json()
    assert canceling["processing_status"] == "canceling"
    assert canceling["cancel_initiated_at"] is not None
    ended = (await http.get(f"{BATCHES}/{batch['id']}")).json()
    assert ended["processing_status"] == "ended"
    assert ended["request_counts"]["canceled"] == 2
    assert await results(http, batch["id"]) == {
        "a": {"type": "canceled"},
        "b": {"type": "canceled"},
    }
    # Cancelling an ended batch changes nothing.
    again = (await http.post(f"{BATCHES}/{batch['id']}/cancel")).json()
    assert again["processing_status"] == "ended"


@bounded(10)
async def test_delete_only_once_ended(http: httpx.AsyncClient, clock: FakeClock) -> None:
    batch = await create(http, {"custom_id": "a", "params": params()})
    refused = await http.delete(f"{BATCHES}/{batch['id']}")
    assert refused.status_code == 400 and "cancel it first" in refused.json()["error"]["message"]
    clock.advance(FAST.batch_delay_s)
    deleted = await http.delete(f"{BATCHES}/{batch['id']}")
    assert deleted.json() == {"id": batch["id"], "type": "message_batch_deleted"}
    assert (await http.get(f"{BATCHES}/{batch['id']}")).status_code == 404


@bounded(10)
async def test_a_batch_slower_than_a_day_expires_at_24_hours(
    sim: SimServer, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    sim.set_profile(HAIKU, batch_delay_s=EXPIRE_S)
    batch = await create(http, {"custom_id": "a", "params": params()})
    clock.advance(EXPIRE_S)
    ended = (await http.get(f"{BATCHES}/{batch['id']}")).json()
    assert ended["processing_status"] == "ended"
    assert ended["request_counts"]["expired"] == 1
    assert await results(http, batch["id"]) == {"a": {"type": "expired"}}


@bounded(10)
async def test_list_pages_newest_first_with_after_id_and_limit(http: httpx.AsyncClient) -> None:
    ids = [(await create(http, {"custom_id": "a", "params": params()}))["id"] for _ in range(3)]
    first = (await http.get(BATCHES, params={"limit": 2})).json()
    assert [b["id"] for b in first["data"]] == [ids[2], ids[1]]
    assert first["has_more"] is True
    assert (first["first_id"], first["last_id"]) == (ids[2], ids[1])
    rest = (await http.get(BATCHES, params={"limit": 2, "after_id": first["last_id"]})).json()
    assert [b["id"] for b in rest["data"]] == [ids[0]] and rest["has_more"] is False
    before = (await http.get(BATCHES, params={"before_id": ids[0]})).json()
    assert [b["id"] for b in before["data"]] == [ids[2], ids[1]]
    bad = await http.get(BATCHES, params={"limit": 0})
    assert bad.status_code == 400 and "limit" in bad.json()["error"]["message"]
    assert (await http.get(BATCHES, params={"after_id": "msgbatch_x"})).status_code == 404


@bounded(10)
async def test_a_batches_status_fault_refuses_the_create_and_leaves_messages_alone(
    sim: SimServer, http: httpx.AsyncClient
) -> None:
    sim.registry.add(
        {"model": HAIKU, "kind": "status", "status": 529, "api": "batches", "count": 1}
    )
    refused = await http.post(BATCHES, json={"requests": [{"custom_id": "a", "params": params()}]})
    assert refused.status_code == 529
    assert refused.json()["error"]["type"] == "overloaded_error"
    assert (await http.get(BATCHES)).json()["data"] == []
    # The synchronous endpoint is not hit by it, and the count was used up by the create.
    sim.registry.add({"model": HAIKU, "kind": "status", "status": 529, "api": "batches"})
    sync = await http.post("/anthropic/v1/messages", json=params())
    assert sync.status_code == 200
    # ...and a synchronous fault does not hit the batches API.
    sim.registry.clear()
    sim.registry.add({"model": HAIKU, "kind": "status", "status": 529})
    await create(http, {"custom_id": "a", "params": params()})


@bounded(10)
async def test_batch_errored_and_batch_expired_hit_results_one_request_at_a_time(
    sim: SimServer, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    sim.registry.add({"model": HAIKU, "kind": "batch_errored", "count": 1})
    sim.registry.add({"model": HAIKU, "kind": "batch_expired", "count": 1})
    batch = await create(
        http,
        *({"custom_id": f"r{i}", "params": params()} for i in range(3)),
    )
    clock.advance(FAST.batch_delay_s)
    got = await results(http, batch["id"])
    assert got["r0"] == {
        "type": "errored",
        "error": {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
    }
    assert got["r1"] == {"type": "expired"}
    assert got["r2"]["type"] == "succeeded"
    counts = (await http.get(f"{BATCHES}/{batch['id']}")).json()["request_counts"]
    assert (counts["errored"], counts["expired"], counts["succeeded"]) == (1, 1, 1)
    assert sim.registry.list() == []  # both counts used up by the results


@bounded(10)
async def test_batch_requests_are_in_the_request_log(
    sim: SimServer, http: httpx.AsyncClient
) -> None:
    batch = await create(http, {"custom_id": "a", "params": params()})
    await http.get(f"{BATCHES}/{batch['id']}")
    await http.post(BATCHES, json={"requests": []})
    entries = [e for e in sim.log.entries() if e.api == "batches"]
    assert [(e.model, e.outcome, e.status) for e in entries] == [
        (HAIKU, "ok", 200),
        (HAIKU, "ok", 200),
        (None, "error:400", 400),
    ]
    assert all(e.request_id.startswith("req_") for e in entries)


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (
            {"model": "m", "kind": "batch_errored", "api": "sync"},
            'only applies to "api": "batches"',
        ),
        ({"model": "m", "kind": "cut", "api": "batches"}, 'cut does not apply to "api": "batches"'),
        ({"model": "m", "kind": "status", "status": 500, "api": "queue"}, '"api" must be one of'),
        ({"model": "m", "kind": "batch_expired", "delay_s": 1}, "unknown field(s)"),
    ],
)
def test_batch_faults_are_validated_like_the_other_kinds(data: dict[str, Any], says: str) -> None:
    with pytest.raises(FaultError) as caught:
        parse_fault(data, "f1")
    assert says in str(caught.value)


def test_a_batch_fault_shows_its_api_and_a_sync_one_does_not() -> None:
    assert parse_fault({"model": "m", "kind": "batch_errored"}, "f1").to_json()["api"] == "batches"
    assert "api" not in parse_fault({"model": "m", "kind": "reset"}, "f2").to_json()


@bounded(10)
async def test_control_api_bounds_batch_delay_s_and_refuses_bad_batch_faults(
    sim: SimServer,
) -> None:
    async with httpx.AsyncClient(base_url=sim.url, timeout=5) as control:
        too_long = await control.post("/models", json={"model": HAIKU, "batch_delay_s": 1e9})
        assert too_long.status_code == 422
        assert f"batch_delay_s must be <= {shown(MAX_BATCH_DELAY_S)}" in too_long.text
        negative = await control.post("/models", json={"model": HAIKU, "batch_delay_s": -1})
        assert negative.status_code == 400
        bad = await control.post("/faults", json={"model": HAIKU, "kind": "hang", "api": "batches"})
        assert bad.status_code == 400 and "does not apply" in bad.text
        ok = await control.post("/models", json={"model": HAIKU, "batch_delay_s": 5})
        assert ok.json()["batch_delay_s"] == 5
