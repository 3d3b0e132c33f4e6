"""Delete, Undo and delete for good (web.routes.trash), in process, on both databases, with and
without htmx; the trash's clock is stepped by the tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from web.db.models import Conversation, Message, Turn, utcnow
from web.db.session import Factory, read_scope
from web.db.trash import NOTHING_TO_UNDO
from web.state import AppState
from web.trash import KEEP_S, UNDO_S

from .conftest import Chat, csrf_of, new_chat, text_of
from support.database import BACKENDS

pytestmark = BACKENDS


def _htmx(chat: Chat) -> dict[str, str]:
    return {"X-CSRF-Token": chat.token, "HX-Request": "true"}


async def _rows(factory: Factory, conversation: str) -> tuple[int, int, int]:
    """Conversation, message and turn rows left of a conversation."""
    async with read_scope(factory) as session:
        conversations = await session.scalar(
            select(func.count()).where(Conversation.id == conversation)
        )
        messages = await session.scalar(
            select(func.count()).where(Message.conversation_id == conversation)
        )
        turns = await session.scalar(
            select(func.count()).where(Turn.conversation_id == conversation)
        )
    return conversations or 0, messages or 0, turns or 0


@pytest.fixture
async def stranger(app: FastAPI) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http, csrf_of((await http.get("/")).text)


async def test_without_javascript_delete_offers_undo_and_undo_brings_it_back(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    chat = await new_chat(client, app, "Delete me")
    gone = await client.post(f"/c/{chat.id}/delete", data={"csrf_token": chat.token})
    assert (gone.status_code, gone.headers["location"]) == (303, f"/?deleted={chat.id}")
    home = await client.get(gone.headers["location"])
    assert "Deleted “Delete me”. Undo" in text_of(home.text)
    assert f'action="/c/{chat.id}/restore"' in home.text  # a plain form: works without JS
    assert f'data-undo-seconds="{UNDO_S}"' in home.text
    assert f'href="/c/{chat.id}"' not in home.text  # no longer listed
    assert (await client.get(f"/c/{chat.id}")).status_code == 404

    back = await client.post(f"/c/{chat.id}/restore", data={"csrf_token": chat.token})
    assert (back.status_code, back.headers["location"]) == (303, f"/c/{chat.id}")
    page = await client.get(f"/c/{chat.id}")
    assert page.status_code == 200 and "Delete me" in page.text
    assert 'data-testid="undo"' not in (await client.get(f"/?deleted={chat.id}")).text


async def test_purge_removes_it_for_good_and_undo_then_says_so(
    client: httpx.AsyncClient, app: FastAPI, factory: Factory
) -> None:
    chat = await new_chat(client, app)
    gone = await client.post(f"/c/{chat.id}/delete", headers=_htmx(chat))
    assert gone.headers["HX-Redirect"] == f"/?deleted={chat.id}"
    assert await _rows(factory, chat.id) == (1, 2, 1)  # kept for the undo meanwhile
    purged = await client.post(f"/c/{chat.id}/purge", headers=_htmx(chat))
    assert (purged.status_code, purged.text) == (200, "")  # htmx swaps the offer away
    assert await _rows(factory, chat.id) == (0, 0, 0)
    late = await client.post(f"/c/{chat.id}/restore", headers=_htmx(chat))
    assert late.status_code == 404
    assert NOTHING_TO_UNDO in text_of(late.text)


async def test_purge_never_touches_a_conversation_that_is_not_deleted(
    client: httpx.AsyncClient, app: FastAPI, factory: Factory
) -> None:
    chat = await new_chat(client, app)
    await client.post(f"/c/{chat.id}/delete", headers=_htmx(chat))
    assert (await client.post(f"/c/{chat.id}/restore", headers=_htmx(chat))).status_code == 200
    # An offer's timer that fires after its Undo: nothing happens.
    assert (await client.post(f"/c/{chat.id}/purge", headers=_htmx(chat))).status_code == 200
    assert await _rows(factory, chat.id) == (1, 2, 1)
    assert (await client.get(f"/c/{chat.id}")).status_code == 200


async def test_after_keep_s_undo_is_refused_and_the_sweep_removes_it(
    client: httpx.AsyncClient, app: FastAPI, factory: Factory
) -> None:
    trash = AppState.of(app).trash
    start = utcnow()
    trash.clock = lambda: start
    chat = await new_chat(client, app)
    await client.post(f"/c/{chat.id}/delete", headers=_htmx(chat))

    trash.clock = lambda: start + timedelta(seconds=KEEP_S - 0.5)
    assert 'data-undo-seconds="1"' in (await client.get(f"/?deleted={chat.id}")).text
    assert await trash.sweep() == 0
    trash.clock = lambda: start + timedelta(seconds=KEEP_S + 1)
    assert 'data-testid="undo"' not in (await client.get(f"/?deleted={chat.id}")).text
    assert (await client.post(f"/c/{chat.id}/restore", headers=_htmx(chat))).status_code == 404
    assert await trash.sweep() == 1
    assert await _rows(factory, chat.id) == (0, 0, 0)


async def test_another_session_can_neither_see_nor_undo_nor_purge_it(
    client: httpx.AsyncClient,
    app: FastAPI,
    factory: Factory,
    stranger: tuple[httpx.AsyncClient, str],
) -> None:
    chat = await new_chat(client, app, "Mine")
    await client.post(f"/c/{chat.id}/delete", headers=_htmx(chat))
    other, token = stranger
    headers = {"X-CSRF-Token": token, "HX-Request": "true"}
    assert 'data-testid="undo"' not in (await other.get(f"/?deleted={chat.id}")).text
    assert (await other.post(f"/c/{chat.id}/restore", headers=headers)).status_code == 404
    assert (await other.post(f"/c/{chat.id}/purge", headers=headers)).status_code == 200
    assert await _rows(factory, chat.id) == (1, 2, 1)
    assert (await client.post(f"/c/{chat.id}/restore", headers=_htmx(chat))).status_code == 200


async def test_deleting_twice_is_not_found_the_second_time(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    chat = await new_chat(client, app)
    assert (await client.post(f"/c/{chat.id}/delete", headers=_htmx(chat))).status_code == 200
    again = await client.post(f"/c/{chat.id}/delete", headers=_htmx(chat))
    assert again.status_code == 404
