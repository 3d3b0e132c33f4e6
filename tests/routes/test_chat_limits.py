"""Per-session limits of the chat: the sidebar pages through every conversation, and new
conversations are rate-limited per session. The real app, in process, on both databases."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
from fastapi import FastAPI
from sqlalchemy import insert, select

from web.db.models import Conversation
from web.db.session import Factory, read_scope, session_scope
from web.db.sidebar import LIST_LIMIT
from web.ratelimit import NEW_CHAT_WINDOW_S
from web.routes.chat import too_many_new_chats
from web.state import AppState

from .conftest import csrf_of, text_of
from support.database import BACKENDS

pytestmark = BACKENDS

LINK = re.compile(r'href="/c/([0-9a-f]+)"')
OLDER = re.compile(r'hx-get="(/conversations\?before=[^"]+)"')


async def _new_chat(client: httpx.AsyncClient, token: str, text: str = "hello") -> httpx.Response:
    return await client.post(
        "/c", data={"content": text}, headers={"X-CSRF-Token": token, "HX-Request": "true"}
    )


async def _stored(factory: Factory) -> int:
    async with read_scope(factory) as session:
        return len((await session.scalars(select(Conversation.id))).all())


async def test_the_sidebar_pages_through_every_conversation(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    token = csrf_of((await client.get("/")).text)
    first = await _new_chat(client, token)
    async with session_scope(factory) as session:
        owner = await session.scalar(select(Conversation.owner))
        start = datetime(2026, 1, 1, tzinfo=UTC)
        # Pairs share a timestamp, so the cursor must break ties by id.
        await session.execute(
            insert(Conversation),
            [
                {
                    "id": f"{i:032x}",
                    "owner": owner,
                    "title": f"chat {i}",
                    "created_at": start,
                    "updated_at": start + timedelta(seconds=i // 2),
                }
                for i in range(2 * LIST_LIMIT + 30)
            ],
        )
    expected = await _stored(factory)

    page = await client.get("/")
    seen = LINK.findall(page.text)
    assert len(seen) == LIST_LIMIT and seen[0] == first.headers["HX-Redirect"][3:]
    pages = 1
    while (older := OLDER.search(page.text)) is not None:
        url = older.group(1).replace("&amp;", "&")
        page = await client.get(url, headers={"HX-Request": "true"})
        assert page.status_code == 200 and "<html" not in page.text
        seen += LINK.findall(page.text)
        pages += 1
        full = await client.get(url)  # without htmx: the whole page, with that part of the list
        assert full.status_code == 200 and "<html" in full.text
    assert (pages, len(seen), len(set(seen))) == (3, expected, expected)
    assert seen[-2:] == [f"{1:032x}", f"{0:032x}"]  # the oldest come last
    malformed = await client.get("/conversations?before=yesterday", headers={"HX-Request": "true"})
    assert malformed.status_code == 422


async def test_new_conversations_are_limited_per_session_and_say_when_to_try_again(
    client: httpx.AsyncClient, app: FastAPI, factory: Factory
) -> None:
    limiter = AppState.of(app).new_chats
    assert limiter.limit == AppState.of(app).settings.new_chats_per_minute == 20
    now = [1000.0]
    limiter.clock = lambda: now[0]
    limiter.limit = 3
    token = csrf_of((await client.get("/")).text)
    for i in range(3):
        assert (await _new_chat(client, token, f"chat {i}")).status_code == 200
        now[0] += 10.0

    refused = await _new_chat(client, token, "one too many")
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "30"  # the first leaves the window at 1060
    assert too_many_new_chats(3, 30) in text_of(refused.text)
    assert "Try again in 30 seconds" in too_many_new_chats(3, 30)
    assert await _stored(factory) == 3

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
        other_token = csrf_of((await other.get("/")).text)
        assert (await _new_chat(other, other_token)).status_code == 200  # its own allowance

    now[0] = 1000.0 + NEW_CHAT_WINDOW_S + 0.5
    assert (await _new_chat(client, token, "now it may")).status_code == 200
    assert (await _new_chat(client, token, "but only one")).status_code == 429
