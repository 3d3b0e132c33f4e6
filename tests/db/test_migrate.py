from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from web.db import chat, sidebar
from web.db.migrate import (
    check_database,
    current_revision,
    downgrade_database,
    head_revision,
    run_upgrade,
    upgrade_database,
)
from web.db.models import Base
from web.db.session import make_engine, make_sessionmaker
from web.db.turnlog import record_outcome
from web.settings import ConfigError
from web.status import Activity

from support.database import EMPTY_BACKENDS, PG_URL_TEMPLATE, create_pg_database, drop_pg_database
from support.outcomes import SONNET, answer, ok

LOG_TABLES = {"conversations", "messages", "turns", "attempts", "deferred_jobs", "drills"}
HEAD = "0005_processes"


def _inspect(url: str) -> tuple[set[str], list[object]]:
    """(table names, differences between the models and the migrated schema)."""

    def look(conn: Connection) -> tuple[set[str], list[object]]:
        tables = set(inspect(conn).get_table_names())
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        return tables, diff

    async def run() -> tuple[set[str], list[object]]:
        engine = make_engine(url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(look)
        finally:
            await engine.dispose()

    return asyncio.run(run())


@EMPTY_BACKENDS
def test_upgrade_from_empty_then_down_to_base_and_up_again(empty_database_url: str) -> None:
    url = empty_database_url
    assert current_revision(url) is None

    upgrade_database(url)
    tables, diff = _inspect(url)
    assert current_revision(url) == head_revision() == HEAD
    assert tables >= LOG_TABLES
    assert diff == [], "the migrations and web/db/models.py disagree"

    upgrade_database(url)  # safe to call at every start
    assert current_revision(url) == HEAD

    downgrade_database(url, "base")
    tables, _ = _inspect(url)
    assert current_revision(url) is None
    assert tables & LOG_TABLES == set()

    upgrade_database(url)
    tables, diff = _inspect(url)
    assert tables >= LOG_TABLES
    assert diff == []


def test_upgrade_creates_the_sqlite_folder(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "understudy.db"
    upgrade_database(f"sqlite+aiosqlite:///{path}")
    assert path.exists()
    assert path.with_name("understudy.db-wal").exists() or path.stat().st_size > 0


def test_current_revision_does_not_create_a_missing_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.db"
    assert current_revision(f"sqlite+aiosqlite:///{path}") is None
    assert not path.exists()


async def test_upgrade_works_from_inside_a_running_event_loop(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'in_loop.db'}"
    upgrade_database(url)  # the app may call it from its lifespan
    assert current_revision(url) == HEAD


def test_db_upgrade_command_says_what_it_did(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("UNDERSTUDY_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("UNDERSTUDY_DATABASE_URL", raising=False)

    assert run_upgrade() == 0
    first = capsys.readouterr().out
    assert f"upgraded from an empty database to {HEAD}" in first
    assert str(tmp_path / "understudy.db") in first

    assert run_upgrade() == 0
    assert f"already at {HEAD}" in capsys.readouterr().out


@pytest.mark.postgres
def test_db_upgrade_never_prints_the_database_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = create_pg_database()
    try:
        # The local server trusts loopback, so it accepts (and ignores) any password.
        with_password = url.replace("postgres@", "postgres:Hunter2-db-secret@")
        monkeypatch.setenv("UNDERSTUDY_DATABASE_URL", with_password)
        assert run_upgrade() == 0
        out = capsys.readouterr()
        assert f"upgraded from an empty database to {HEAD}" in out.out
        assert "Hunter2-db-secret" not in out.out + out.err
        assert "***" in out.out
    finally:
        drop_pg_database(url)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+asyncpg://u:Hunter2-db-secret@127.0.0.1:1/x", "u:***@127.0.0.1:1/x"),
        ("postgres+nodriver://u:Hunter2-db-secret@h/x", "u:***@h/x"),
        ("not a url u:Hunter2-db-secret@h", "***@h"),
        ("sqlite+aiosqlite:////proc/no/such/folder/u.db", "/proc/no/such/folder/u.db"),
    ],
)
def test_a_database_it_cannot_use_is_a_config_error_with_the_password_masked(
    url: str, shown: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        check_database(url)
    message = str(raised.value)
    assert shown in message and "UNDERSTUDY_DATABASE_URL" in message
    assert "Hunter2-db-secret" not in message and "\n" not in message


@pytest.mark.postgres
def test_a_missing_postgres_database_says_so() -> None:
    url = PG_URL_TEMPLATE.format(name="understudy_no_such_database")
    with pytest.raises(ConfigError, match='database "understudy_no_such_database" does not exist'):
        check_database(url)


@EMPTY_BACKENDS
def test_the_upgrade_to_0002_counts_replies_that_landed_before_it_as_seen(
    empty_database_url: str,
) -> None:
    url = empty_database_url
    upgrade_database(url)

    async def answered_then_listed() -> list[Activity]:
        engine = make_engine(url)
        try:
            sessions = make_sessionmaker(engine)
            new = await chat.start_conversation(sessions, "a" * 64, "from before")
            await record_outcome(sessions, new.turn_id, answer(SONNET, "hi", (ok(SONNET, 1),)))
            return [c.activity for c in await sidebar.list_conversations(sessions, "a" * 64)]
        finally:
            await engine.dispose()

    async def listed() -> list[Activity]:
        engine = make_engine(url)
        try:
            rows = await sidebar.list_conversations(make_sessionmaker(engine), "a" * 64)
            return [c.activity for c in rows]
        finally:
            await engine.dispose()

    assert asyncio.run(answered_then_listed()) == [Activity.NEW]
    downgrade_database(url, "0001_initial")  # as if it had been answered before the upgrade
    upgrade_database(url)
    assert asyncio.run(listed()) == [Activity.IDLE]


@pytest.mark.postgres
def test_several_processes_upgrading_one_postgres_database_at_once_all_succeed() -> None:
    """Without the advisory lock, two upgrades from empty both try to create the tables."""
    url = create_pg_database()
    try:
        with ThreadPoolExecutor(3) as pool:
            list(pool.map(lambda _: upgrade_database(url), range(3)))
        assert current_revision(url) == head_revision()
    finally:
        drop_pg_database(url)
