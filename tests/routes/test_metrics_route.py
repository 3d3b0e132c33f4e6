"""GET /metrics in process: who may read it (loopback, the bearer token), and the figures read
from the database when it is scraped (the queue, the last passing drill)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from web.app import create_app
from web.db.models import Drill
from web.db.session import Factory, session_scope
from web.metrics import CONTENT_TYPE
from web.metrics_access import BAD_HOST, NOT_LOOPBACK, TOKEN_MISSING, TOKEN_WRONG
from web.routes.metrics import utc_now
from web.status import JobState

from .conftest import running, settings_for
from support.database import BACKENDS
from support.factories import NOW
from support.jobs import deferred_turn

pytestmark = BACKENDS
TOKEN = "scrape-token-for-the-tests"
LOOPBACK = ("127.0.0.1", 50123)
ELSEWHERE = ("203.0.113.9", 50123)


def scraper(app: FastAPI, client: tuple[str, int] = LOOPBACK) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=client)
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000")


def gauges(text: str) -> dict[str, float]:
    return {
        s.name: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if not s.labels
    }


@pytest.fixture(autouse=True)
def fixed_now(app: FastAPI) -> Iterator[None]:
    app.dependency_overrides[utc_now] = lambda: NOW
    yield
    app.dependency_overrides.pop(utc_now, None)


@pytest.fixture
async def guarded(factory: Factory, database_url: str, tmp_path: Path) -> AsyncIterator[FastAPI]:
    """The app with UNDERSTUDY_METRICS_TOKEN set."""
    settings = replace(settings_for(tmp_path, database_url), metrics_token=TOKEN)
    made = create_app(settings)
    async with running(made, settings, factory):
        yield made


async def test_a_loopback_client_reads_the_text_format(app: FastAPI) -> None:
    async with scraper(app) as http:
        reply = await http.get("/metrics")
    assert reply.status_code == 200
    assert reply.headers["content-type"] == CONTENT_TYPE
    assert reply.headers["cache-control"] == "no-store"
    names = {f.name for f in text_string_to_metric_families(reply.text)}
    assert {"understudy_turns", "understudy_breaker_state", "understudy_live_turns"} <= names


async def test_a_client_elsewhere_is_refused_with_a_plain_message(app: FastAPI) -> None:
    async with scraper(app, ELSEWHERE) as http:
        refused = await http.get("/metrics")
        with_token = await http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("text/plain")
    assert refused.text == NOT_LOOPBACK + "\n"
    assert with_token.status_code == 403  # no token is configured: a token opens nothing


async def test_a_loopback_request_naming_another_host_is_refused(app: FastAPI) -> None:
    async with scraper(app) as http:
        refused = await http.get("/metrics", headers={"Host": "chat.example.org"})
    assert refused.status_code == 403
    assert refused.text == BAD_HOST.format(host="chat.example.org") + "\n"


@pytest.mark.parametrize("client", [LOOPBACK, ELSEWHERE])
async def test_with_a_token_set_the_bearer_token_is_required_of_everyone(
    guarded: FastAPI, client: tuple[str, int]
) -> None:
    async with scraper(guarded, client) as http:
        missing = await http.get("/metrics")
        wrong = await http.get("/metrics", headers={"Authorization": "Bearer not-it"})
        right = await http.get(
            "/metrics",
            headers={"Authorization": f"Bearer {TOKEN}", "Host": "metrics.example.org"},
        )
    assert (missing.status_code, missing.text) == (401, TOKEN_MISSING + "\n")
    assert missing.headers["www-authenticate"] == "Bearer"
    assert (wrong.status_code, wrong.text) == (401, TOKEN_WRONG + "\n")
    assert right.status_code == 200
    assert "understudy_turns_total" in right.text
    assert TOKEN not in right.text


async def test_the_queue_and_the_last_passing_drill_are_read_when_scraped(
    app: FastAPI, factory: Factory
) -> None:
    async with scraper(app) as http:
        empty = gauges((await http.get("/metrics")).text)
    assert empty["understudy_queue_depth"] == 0
    assert empty["understudy_queue_oldest_age_seconds"] == 0
    assert empty["understudy_drill_last_pass_timestamp_seconds"] == 0
    assert empty["understudy_live_turns"] == 0

    prompt = "A question nobody else should read"
    oldest = await deferred_turn(
        factory, state=JobState.WAITING, queued_at=NOW - timedelta(minutes=7), prompt=prompt
    )
    await deferred_turn(factory, state=JobState.SUBMITTED, queued_at=NOW - timedelta(minutes=2))
    await deferred_turn(
        factory,
        state=JobState.DONE,
        queued_at=NOW - timedelta(hours=1),
        finished_at=NOW - timedelta(minutes=50),
    )
    passed = NOW - timedelta(days=3)
    async with session_scope(factory) as session:
        for verdict, ended in (
            ("pass", passed - timedelta(days=90)),
            ("pass", passed),
            ("fail", NOW - timedelta(days=1)),  # later, but not a pass
            (None, None),  # still running
        ):
            session.add(
                Drill(
                    scenario="primary-down",
                    faults="[]",
                    instance_wide=False,
                    started_at=(ended or NOW) - timedelta(minutes=5),
                    expires_at=(ended or NOW) + timedelta(hours=1),
                    ended_at=ended,
                    verdict=verdict,
                )
            )

    async with scraper(app) as http:
        text = (await http.get("/metrics")).text
    figures = gauges(text)
    assert figures["understudy_queue_depth"] == 2
    assert figures["understudy_queue_oldest_age_seconds"] == 7 * 60
    assert figures["understudy_drill_last_pass_timestamp_seconds"] == passed.timestamp()
    assert prompt not in text and oldest not in text
