"""The sidebar's markers and its refresh (web.routes.sidebar), in process, on both databases."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
from fastapi import FastAPI
from sqlalchemy import insert, select

from web.db import chat as db
from web.db.models import Conversation
from web.db.session import Factory, read_scope, session_scope
from web.db.sidebar import LIST_LIMIT
from web.routes.sidebar import POLL_S
from web.state import AppState

from .conftest import new_chat
from support.database import BACKENDS

pytestmark = BACKENDS

ITEM = re.compile(r'<li data-conversation="([0-9a-f]+)" data-activity="([a-z]+)">')


def _marks(html: str) -> dict[str, str]:
    return dict(ITEM.findall(html))


async def _seen_at(factory: Factory, conversation: str) -> object:
    async with read_scope(factory) as session:
        return await session.scalar(
            select(Conversation.seen_at).where(Conversation.id == conversation)
        )


async def test_a_landed_reply_is_new_until_its_page_is_opened(
    client: httpx.AsyncClient, app: FastAPI, factory: Factory
) -> None:
    chat = await new_chat(client, app, "Answer me")
    home = await client.get("/")
    assert _marks(home.text) == {chat.id: "new"}
    assert f'aria-describedby="mark-{chat.id}"' in home.text
    assert '<span class="visually-hidden">new reply</span>' in home.text  # words, not colour
    assert (await client.head(f"/c/{chat.id}")).status_code == 200
    assert await _seen_at(factory, chat.id) is None  # a HEAD has not shown it to anyone
    page = await client.get(f"/c/{chat.id}")
    assert _marks(page.text) == {chat.id: "idle"}
    assert await _seen_at(factory, chat.id) is not None
    assert _marks((await client.get("/")).text) == {chat.id: "idle"}


async def test_a_reply_being_written_is_marked_and_the_list_asks_to_be_polled(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    chat = await new_chat(client, app)
    # A turn row that is live in the database, whoever writes it.
    await db.add_user_message(AppState.of(app).sessions, chat.owner, chat.id, "More?")
    listed = await client.get("/sidebar", params={"current": chat.id})
    assert listed.status_code == 200 and listed.headers["cache-control"] == "no-store"
    assert listed.text.startswith('<ul class="conversation-list" id="conversation-list"')
    assert _marks(listed.text) == {chat.id: "writing"}  # on screen, but not finished: no "seen"
    assert f'data-current="{chat.id}"' in listed.text
    assert f'data-poll-ms="{POLL_S * 1000}"' in listed.text
    assert "a reply is being written" in listed.text
    assert 'aria-current="page"' in listed.text


async def test_the_refresh_for_the_page_on_screen_records_that_it_was_seen(
    client: httpx.AsyncClient, app: FastAPI, factory: Factory
) -> None:
    watched = await new_chat(client, app, "on screen")
    elsewhere = await new_chat(client, app, "not on screen")
    assert _marks((await client.get("/sidebar")).text) == {
        watched.id: "new",
        elsewhere.id: "new",
    }
    listed = await client.get("/sidebar", params={"current": watched.id})
    assert _marks(listed.text) == {watched.id: "idle", elsewhere.id: "new"}
    assert _marks((await client.get("/sidebar")).text) == {
        watched.id: "idle",
        elsewhere.id: "new",
    }


async def test_the_refresh_keeps_as_many_conversations_as_the_page_shows(
    client: httpx.AsyncClient, app: FastAPI, factory: Factory
) -> None:
    chat = await new_chat(client, app)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    async with session_scope(factory) as session:
        await session.execute(
            insert(Conversation),
            [
                {
                    "id": f"{i:032x}",
                    "owner": chat.owner,
                    "title": f"chat {i}",
                    "created_at": start,
                    "updated_at": start + timedelta(seconds=i),
                }
                for i in range(LIST_LIMIT + 20)
            ],
        )
    first_page = await client.get("/sidebar")
    assert (
        len(_marks(first_page.text)) == LIST_LIMIT and 'data-testid="show-older"' in first_page.text
    )
    opened = await client.get("/sidebar", params={"shown": LIST_LIMIT + 21})  # all, by "Show older"
    assert len(_marks(opened.text)) == LIST_LIMIT + 21
    assert 'data-testid="show-older"' not in opened.text
    assert len(_marks((await client.get("/sidebar", params={"shown": 2})).text)) == LIST_LIMIT
    assert (await client.get("/sidebar", params={"shown": "many"})).status_code == 422


async def test_another_sessions_conversation_is_neither_listed_nor_marked_seen(
    client: httpx.AsyncClient, app: FastAPI, factory: Factory
) -> None:
    chat = await new_chat(client, app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
        listed = await other.get("/sidebar", params={"current": chat.id})
    assert _marks(listed.text) == {}
    assert await _seen_at(factory, chat.id) is None
