"""/admin when several processes serve one app: two apps in process on the same settings stand
for two processes (each its own AdminAuth, runner and breakers), on the local Redis under a
prefix of this test's own."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import redis

from web.app import create_app
from web.db.session import Factory
from web.settings import Settings

from .conftest import csrf_of, log_in, running, settings_for
from support.cluster import REDIS_URL, redis_or_skip
from support.database import BACKENDS

pytestmark = BACKENDS
HINT = 'data-testid="breakers-of-process"'


@pytest.fixture
def shared(tmp_path: Path, database_url: str) -> Settings:
    """The settings of an app whose processes share Redis."""
    redis_or_skip()
    prefix = f"understudy-test-{uuid.uuid4().hex[:12]}:"
    return replace(settings_for(tmp_path, database_url), redis_url=REDIS_URL, redis_prefix=prefix)


@pytest.fixture
async def two(
    shared: Settings, factory: Factory
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """One browser's client to each of two processes (the cookies are copied between them)."""
    first, second = create_app(shared), create_app(shared)
    async with (
        running(first, shared, factory),
        running(second, shared, factory),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=first), base_url="http://t") as a,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=second), base_url="http://t") as b,
    ):
        yield a, b
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=f"{shared.redis_prefix}*"):
        client.delete(key)
    client.close()


async def test_a_login_through_one_process_opens_the_dashboard_of_the_other(
    two: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    first, second = two
    assert (await log_in(first)).status_code == 303
    second.cookies = first.cookies
    page = await second.get("/admin")
    assert page.status_code == 200, page.headers.get("location")
    assert "Circuit breakers" in page.text
    assert HINT not in page.text  # shared through Redis: every process's

    # A logout through the second process ends the login for the first one too.
    logout = await second.post("/admin/logout", data={"csrf_token": csrf_of(page.text)})
    assert logout.status_code == 303
    again = await first.get("/admin")  # the first still has the cookie of before the logout
    assert again.status_code == 303
    assert again.headers["location"].startswith("/admin/login")


async def test_without_redis_the_breakers_are_said_to_be_this_processs(
    client: httpx.AsyncClient,
) -> None:
    assert (await log_in(client)).status_code == 303
    page = await client.get("/admin")
    assert page.status_code == 200
    assert HINT in page.text
    assert f"pid {os.getpid()}" in page.text
