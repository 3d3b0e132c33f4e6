"""Route tests: the real app (create_app) in process, on both databases, without its lifespan.

Instead of the lifespan, :func:`running` attaches the AppState it would build, on the test's
session factory: no simulator starts and no model is called. The database fixtures (`factory`,
`database_url`) come from tests/support/database.py, through tests/conftest.py.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from web.admin_auth import AdminAuth
from web.app import create_app, make_templates
from web.breaker_store import Breakers
from web.chain import Chain
from web.db.models import Conversation
from web.db.session import Factory, read_scope
from web.drills import Drills
from web.processes import ProcessLease
from web.ratelimit import SlidingWindow
from web.runner import TurnRunner
from web.settings import Settings
from web.state import AppState
from web.trash import Trash

PASSWORD = "correct horse battery staple"
NOWHERE = "http://127.0.0.1:9"
"""Where the tests' chain points: nothing listens there, and these tests never call a model."""


@asynccontextmanager
async def running(
    app: FastAPI, settings: Settings, sessions: Factory, breakers: Breakers | None = None
) -> AsyncIterator[AppState]:
    """The AppState the lifespan would attach, built on ``sessions``; closed afterwards. Its
    chain has no breakers unless given some."""
    chain = Chain.from_settings(settings.with_sim(NOWHERE), breakers)
    runner = TurnRunner(chain, sessions, deadline_s=settings.turn_deadline_s)
    # Announced (its turns hold their conversation) but not beating: no task runs behind the test.
    process = ProcessLease(sessions, lease_s=settings.lease_s, orphan_after_s=3600)
    await process.start()
    state = AppState(
        settings=settings,
        sessions=sessions,
        chain=chain,
        runner=runner,
        templates=make_templates(),
        admin=AdminAuth.from_settings(settings),
        sim_client=None,
        demo_mode=False,
        new_chats=SlidingWindow(settings.new_chats_per_minute),
        trash=Trash(sessions),  # its sweep is not started: tests call sweep() with their clock
        drills=Drills(sessions, settings),
        process=process,
    )
    state.attach(app)
    try:
        yield state
    finally:
        await runner.shutdown()
        await process.close()
        await chain.aclose()


def settings_for(tmp_path: Path, database_url: str) -> Settings:
    return Settings.from_env(
        {
            "UNDERSTUDY_DATA_DIR": str(tmp_path),
            "UNDERSTUDY_DATABASE_URL": database_url,
            "UNDERSTUDY_ADMIN_PASSWORD": PASSWORD,
            "UNDERSTUDY_SECRET_KEY": "test-secret-key-for-signing-cookies",
        }
    )


@pytest.fixture
async def app(
    factory: Factory,
    database_url: str,
    tmp_path: Path,
) -> AsyncIterator[FastAPI]:
    settings = settings_for(tmp_path, database_url)
    made = create_app(settings)
    async with running(made, settings, factory):
        yield made


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


def text_of(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split()).replace(" ;", ";")


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF field in the page"
    return match.group(1)


async def log_in(
    client: httpx.AsyncClient, password: str = PASSWORD, **form: str
) -> httpx.Response:
    page = await client.get("/admin/login")
    return await client.post(
        "/admin/login", data={"csrf_token": csrf_of(page.text), "password": password, **form}
    )


@dataclass(frozen=True)
class Chat:
    id: str
    owner: str
    """The owner hash its session's rows carry."""
    token: str
    """The session's CSRF token."""


async def new_chat(client: httpx.AsyncClient, app: FastAPI, text: str = "Hello?") -> Chat:
    """A conversation started by a plain form post, its first turn ended (the tests' chain reaches
    no model, so it fails, or is stopped here if it is still trying). Its page was never opened."""
    token = csrf_of((await client.get("/")).text)
    made = await client.post("/c", data={"csrf_token": token, "content": text})
    assert made.status_code == 303, made.text
    conversation = made.headers["location"].rsplit("/", 1)[1]
    state = AppState.of(app)
    running = state.runner.live_in(conversation)
    if running is not None:
        await state.runner.stop(running)
    async with read_scope(state.sessions) as session:
        owner = await session.scalar(
            select(Conversation.owner).where(Conversation.id == conversation)
        )
    assert owner is not None
    return Chat(conversation, owner, token)
