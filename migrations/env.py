"""Alembic environment: runs the migrations in versions/ on the async engine the app uses.

The database URL comes from ``config.attributes["database_url"]`` (set by web.db.migrate) or,
when the alembic command line is used with migrations/alembic.ini, from the environment (web.settings.database_url_from_env).
"""

from __future__ import annotations

import asyncio
from logging.config import fileConfig
from typing import Any

from alembic import context
from sqlalchemy import event, pool
from sqlalchemy.engine import Connection

from web.db.models import Base
from web.db.session import make_engine

config = context.config
target_metadata = Base.metadata

if config.config_file_name is not None and "database_url" not in config.attributes:
    fileConfig(config.config_file_name)  # the alembic command line: log like it usually does


def _database_url() -> str:
    url = config.attributes.get("database_url")
    if isinstance(url, str) and url:
        return url
    from web.settings import database_url_from_env

    return database_url_from_env()


def _configure(**kwargs: Any) -> None:
    context.configure(
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite cannot ALTER most things: copy-and-move tables instead
        compare_type=True,
        **kwargs,
    )


def _configure_online(connection: Connection) -> None:
    # SQLite does roll back DDL; our engine emits BEGIN itself, so a failed migration leaves the
    # database as it was instead of half-altered.
    _configure(connection=connection, transactional_ddl=True)


def run_migrations_offline() -> None:
    _configure(url=_database_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


# Any constant: one PostgreSQL advisory lock serialises app instances that start at the same time.
_PG_MIGRATION_LOCK = 0x5E5D_0001


def _run_sync(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
    _configure_online(connection)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = make_engine(url, poolclass=pool.NullPool)
    if engine.dialect.name == "sqlite":
        # Batch mode drops and recreates tables; with foreign keys on, dropping a parent table
        # would cascade-delete its children's rows. The pragma is a no-op inside a transaction,
        # so it is set when the connection opens (after the app's own pragmas).
        @event.listens_for(engine.sync_engine, "connect")
        def _fk_off(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=OFF")
            cur.close()

    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_sync)
            await connection.commit()
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_sync(connection)
        return
    asyncio.run(_run_async(_database_url()))


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
