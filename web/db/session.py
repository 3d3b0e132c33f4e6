"""Async engine and sessions. SQLite gets WAL, a busy timeout and BEGIN IMMEDIATE for writes.

Sessions from :func:`read_scope` begin a plain deferred transaction instead: under WAL a reader
never waits for the writer, so the admin page and `understudy turns` do not queue behind chat writes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from web.db import inline_sqlite
from web.db.writelock import write_slot
from web.storage import private_sqlite_files

SQLITE_BUSY_TIMEOUT_MS = 5000
READ_ONLY = "understudy_read_only"
"""Connection execution option: this transaction only reads (SQLite: deferred BEGIN)."""


def make_engine(url: str, *, sqlite_inline: bool = True, **kwargs: Any) -> AsyncEngine:
    """An engine for ``url``; SQLite connections are set up for a concurrent async app.
    ``sqlite_inline``: SQLite runs on the loop's thread (web.db.inline_sqlite), not through
    aiosqlite's thread."""
    if url.startswith("sqlite"):
        if sqlite_inline:
            args: list[tuple[Sequence[Any], dict[str, Any]]] = []
            engine = create_async_engine(
                url, async_creator=inline_sqlite.connector(lambda: args[0]), **kwargs
            )
            cargs, cparams = engine.sync_engine.dialect.create_connect_args(engine.url)
            args.append((cargs, dict(cparams)))
        else:
            engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)
        _configure_sqlite(engine)
        return engine
    return create_async_engine(url, pool_pre_ping=True, **kwargs)


def _sqlite_file(engine: AsyncEngine) -> Path | None:
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _configure_sqlite(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine
    database = _sqlite_file(engine)

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        if database is not None:
            # Before the WAL pragma: SQLite gives -wal and -shm the database file's mode.
            private_sqlite_files(database)
        # Let SQLAlchemy, not the driver, emit BEGIN, so writes can use BEGIN IMMEDIATE.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A read-then-write deferred transaction can fail with SQLITE_BUSY_SNAPSHOT whatever the
        # busy timeout; taking the write lock up front avoids it. Writes are short here.
        if conn.get_execution_options().get(READ_ONLY):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


Factory = async_sessionmaker[AsyncSession]
"""What every query function takes: the app's session factory."""


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def session_scope(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session that commits on success and rolls back on error (SQLite: one at a time, see
    web.db.writelock)."""
    async with write_slot(factory), factory() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


@asynccontextmanager
async def read_scope(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session for reads only: on SQLite its transaction does not take the write lock.

    It never commits; anything written through it is rolled back when the block ends. Objects
    loaded through it stay readable afterwards (detached, not expired).
    """
    async with factory() as session:
        await session.connection(execution_options={READ_ONLY: True})
        try:
            yield session
        finally:
            session.expunge_all()
            await session.rollback()
