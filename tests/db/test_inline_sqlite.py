"""web.db.inline_sqlite: SQLite on the loop's thread, and a lock held by another process waited
for in a thread, so the loop keeps running; aiosqlite's thread stays available (a setting)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from web.db.inline_sqlite import InlineConnection
from web.db.session import make_engine
from web.settings import Settings

LOCK_BOUND_S = 4.0
"""Under the app's 5 s busy timeout: a write that waited it out on the loop would fail."""


def aiosqlite_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if "_connection_worker_thread" in repr(t)]


async def test_statements_run_on_the_loop_thread(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'u.db'}")
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
            await conn.execute(text("INSERT INTO t (v) VALUES (:v)"), [{"v": "a"}, {"v": "b"}])
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT v FROM t ORDER BY id"))).scalars().all()
            raw = await conn.get_raw_connection()
            assert isinstance(raw.driver_connection, InlineConnection)
        assert rows == ["a", "b"]
        assert not aiosqlite_threads()
    finally:
        await engine.dispose()


@pytest.mark.parametrize("inline", [True, False], ids=["inline", "aiosqlite"])
async def test_a_write_waits_for_another_process_lock_without_holding_up_the_loop(
    tmp_path: Path, inline: bool
) -> None:
    path = tmp_path / "u.db"
    engine = make_engine(f"sqlite+aiosqlite:///{path}", sqlite_inline=inline)
    other = sqlite3.connect(path, isolation_level=None)  # as another process would
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (v TEXT)"))
        assert bool(aiosqlite_threads()) is not inline
        other.execute("BEGIN IMMEDIATE")  # holds the write lock

        async def write() -> None:
            async with engine.begin() as conn:  # BEGIN IMMEDIATE: locked
                await conn.execute(text("INSERT INTO t VALUES ('mine')"))

        started = time.monotonic()
        pending = asyncio.create_task(write())
        for _ in range(20):
            await asyncio.sleep(0)  # the loop runs on while the write waits for the lock
        assert not pending.done()
        other.execute("INSERT INTO t VALUES ('theirs')")
        other.execute("COMMIT")
        await asyncio.wait_for(pending, timeout=LOCK_BOUND_S)
        assert time.monotonic() - started < LOCK_BOUND_S
        assert sorted(v for (v,) in other.execute("SELECT v FROM t")) == ["mine", "theirs"]
    finally:
        other.close()
        await engine.dispose()


async def test_a_lock_held_past_the_busy_timeout_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "u.db"
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    other = sqlite3.connect(path, isolation_level=None)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (v TEXT)"))
            raw = await conn.get_raw_connection()
            inline = raw.driver_connection
            assert isinstance(inline, InlineConnection)
            assert inline.busy_timeout_ms == 5000  # the app's (web.db.session)
            inline.busy_timeout_ms = 50
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(Exception, match="database is locked"):
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO t VALUES ('mine')"))
        other.execute("ROLLBACK")
        async with engine.begin() as conn:  # the connection is still good
            await conn.execute(text("INSERT INTO t VALUES ('mine')"))
    finally:
        other.close()
        await engine.dispose()


def test_the_setting_turns_it_off(tmp_path: Path) -> None:
    on = Settings.from_env({"UNDERSTUDY_DATA_DIR": str(tmp_path)})
    off = Settings.from_env({"UNDERSTUDY_DATA_DIR": str(tmp_path), "UNDERSTUDY_SQLITE_INLINE": "0"})
    assert (on.sqlite_inline, off.sqlite_inline) == (True, False)
