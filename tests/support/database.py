"""Database fixtures: every log test runs on SQLite (a temp file) and on PostgreSQL.

PostgreSQL tests use a uniquely named database created through the server's `test` database and
dropped afterwards. They are skipped, with the reason, only when the server cannot be reached.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from web.db.migrate import upgrade_database
from web.db.models import Conversation, Message
from web.db.session import make_engine, make_sessionmaker, session_scope
from web.db.turnlog import open_turn

PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"
PG_URL_TEMPLATE = "postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


async def _pg_admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=3)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def create_pg_database() -> str:
    """A new empty database; returns its SQLAlchemy URL. Skips the test if the server is down."""
    name = f"understudy_test_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is not reachable ({exc!r})")
    return PG_URL_TEMPLATE.format(name=name)


def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def pg_log_url() -> Iterator[str]:
    """One migrated PostgreSQL database for the whole session's log tests."""
    url = create_pg_database()
    try:
        upgrade_database(url)
        yield url
    finally:
        drop_pg_database(url)


@pytest.fixture
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of the parametrised backend ("sqlite" or "postgres")."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'data' / 'understudy.db'}"
        return
    url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


BACKENDS = pytest.mark.parametrize(
    "database_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
EMPTY_BACKENDS = pytest.mark.parametrize(
    "empty_database_url",
    ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
    indirect=True,
)


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database of the parametrised backend."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'understudy.db'}"
        upgrade_database(url)
        yield url
        return
    url = request.getfixturevalue("pg_log_url")
    yield url
    asyncio.run(_truncate(url))


async def _truncate(url: str) -> None:
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text("TRUNCATE attempts, turns, messages, conversations, drills, processes CASCADE")
            )
    finally:
        await engine.dispose()


@pytest.fixture
async def factory(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(database_url)
    try:
        yield make_sessionmaker(engine)
    finally:
        await engine.dispose()


async def add_user_message(
    factory: async_sessionmaker[AsyncSession],
    content: str = "Hello?",
    *,
    conversation_id: str | None = None,
) -> tuple[str, int]:
    """What the chat route commits before a turn starts: (conversation_id, user_message_id)."""
    async with session_scope(factory) as session:
        if conversation_id is None:
            conversation = Conversation(owner="test-owner-hash", title="Test chat")
            session.add(conversation)
            await session.flush()
            conversation_id = conversation.id
        message = Message(conversation_id=conversation_id, role="user", content=content)
        session.add(message)
        await session.flush()
        return conversation_id, message.id


async def start_turn(
    factory: async_sessionmaker[AsyncSession],
    *,
    conversation_id: str,
    user_message_id: int,
    process_id: str | None = None,
) -> tuple[str, int]:
    """A pending turn for a stored user message, the way the chat routes open one:
    (turn id, assistant message id). ``process_id``: the process running it (web.processes)."""
    async with session_scope(factory) as session:
        return await open_turn(
            session,
            conversation_id=conversation_id,
            user_message_id=user_message_id,
            process_id=process_id,
        )
