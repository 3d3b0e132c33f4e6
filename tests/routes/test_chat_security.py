"""The chat's routes against another browser session, in the real app, in process."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from web.state import AppState

from .conftest import csrf_of
from support.database import BACKENDS

pytestmark = BACKENDS


@pytest.fixture
async def stranger(app: FastAPI) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """Another browser session and its CSRF token."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http, csrf_of((await http.get("/")).text)


async def _post(client: httpx.AsyncClient, token: str, path: str, **form: str) -> httpx.Response:
    return await client.post(path, data=form, headers={"X-CSRF-Token": token, "HX-Request": "true"})


async def _conversation(client: httpx.AsyncClient) -> tuple[str, str]:
    """A new conversation of ``client``'s session: (its id, the session's CSRF token)."""
    token = csrf_of((await client.get("/")).text)
    reply = await _post(client, token, "/c", content="hello")
    assert reply.status_code == 200, reply.text
    return reply.headers["HX-Redirect"].removeprefix("/c/"), token


async def test_a_busy_conversation_of_another_session_is_just_not_found(
    client: httpx.AsyncClient, app: FastAPI, stranger: tuple[httpx.AsyncClient, str]
) -> None:
    conversation_id, _ = await _conversation(client)
    turn_id = (await client.get(f"/c/{conversation_id}")).text.split('data-turn="')[1][:32]
    runner = AppState.of(app).runner
    other, token = stranger
    unknown = await _post(other, token, "/c/0123456789abcdef/messages", content="probe")
    with runner.claim(conversation_id):  # a reply is live in it (its own, or this claim)
        sent = await _post(other, token, f"/c/{conversation_id}/messages", content="probe")
        regenerated = await _post(other, token, f"/c/{conversation_id}/turns/{turn_id}/regenerate")
    assert (sent.status_code, sent.text) == (unknown.status_code, unknown.text)
    assert (regenerated.status_code, regenerated.text) == (unknown.status_code, unknown.text)
    assert unknown.status_code == 404
