"""The chat routes (web.routes.chat) in process: page caching and HEAD."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from web.db.models import Message, Turn
from web.db.session import Factory, session_scope
from web.times import full_utc, iso_utc, short_utc

from .conftest import csrf_of, log_in, new_chat

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


async def test_messages_carry_their_time_in_utc_for_the_browser_to_rewrite(
    client: httpx.AsyncClient, app: FastAPI, factory: Factory
) -> None:
    chat = await new_chat(client, app, "When?")
    asked, answered = (
        datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC),
        datetime(2025, 12, 31, 22, 0, tzinfo=UTC),
    )
    async with session_scope(factory) as session:
        await session.execute(
            update(Message).where(Message.role == "user").values(created_at=asked)
        )
        await session.execute(update(Turn).values(started_at=answered))
    page = (await client.get(f"/c/{chat.id}")).text
    user = page.split('data-testid="user-message"')[1].split("</article>")[0]
    reply = page.split('data-testid="assistant-message"')[1].split("</article>")[0]
    for at, html in ((asked, user), (answered, reply)):
        assert (
            f'<time class="msg-time" datetime="{iso_utc(at)}" title="{full_utc(at)}" '
            f"data-local-time>{short_utc(at)}</time>"
        ) in html
    assert 'datetime="2026-03-04T05:06:07Z" title="Wednesday 4 March 2026, 05:06:07 UTC"' in user
    assert '<script src="/static/chat-chrome.js' in page  # which rewrites them, deferred
