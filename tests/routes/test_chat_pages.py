"""The chat routes (web.routes.chat) in process: page caching and HEAD."""

from __future__ import annotations

import httpx
import pytest

from .conftest import csrf_of, log_in

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


async def _new_conversation(client: httpx.AsyncClient) -> str:
    home = await client.get("/")
    made = await client.post("/c", data={"csrf_token": csrf_of(home.text), "content": "Hello?"})
    assert made.status_code == 303
    return made.headers["location"]


async def test_chat_pages_are_never_stored_by_a_cache(client: httpx.AsyncClient) -> None:
    page = await _new_conversation(client)
    for path in ("/", page):
        reply = await client.get(path)
        assert reply.status_code == 200
        assert reply.headers["cache-control"] == "no-store"


async def test_head_answers_like_get_on_pages_and_healthz(client: httpx.AsyncClient) -> None:
    page = await _new_conversation(client)
    await log_in(client)
    for path in ("/healthz", "/", page, "/admin", "/c/no-such-conversation"):
        got = await client.get(path)
        head = await client.head(path)
        assert (path, head.status_code) == (path, got.status_code)
        assert head.headers["content-type"] == got.headers["content-type"]
        assert head.headers.get("cache-control") == got.headers.get("cache-control")
        assert head.content == b""
