"""Alembic, configured in code from the database URL, so it works from any working directory.

The app calls :func:`upgrade_database` at every start; `understudy db upgrade` calls
:func:`run_upgrade`; `understudy serve` calls :func:`check_database` first. The migrations are
``migrations/`` at the repository root, shipped inside the package (see web.resources).

A database that cannot be reached or opened is a configuration problem, not a bug: at the edges
(:func:`database_errors`) it becomes a one-line ConfigError naming the database (password masked)
and the setting to fix, instead of a long traceback from inside the driver.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy import pool, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from web.db.session import make_engine
from web.resources import MIGRATIONS_DIR
from web.settings import ConfigError
from web.storage import private_dir

# Alembic announces each of its plugins at INFO when imported; keep only its useful lines.
logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)

from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402
from alembic.runtime.migration import MigrationContext  # noqa: E402
from alembic.script import ScriptDirectory  # noqa: E402

T = TypeVar("T")


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    # Passed as an attribute, not an ini option: a URL may hold '%' (ini interpolation) or a password.
    cfg.attributes["database_url"] = database_url
    return cfg


def safe_url(database_url: str) -> str:
    """The URL with any password masked, for messages and logs."""
    try:
        return make_url(database_url).render_as_string(hide_password=True)
    except ArgumentError:  # not a URL at all: mask all before the host, wherever a password hides
        return re.sub(r"^([\w+.-]+://)?.*@", r"\1***@", database_url)


@contextlib.contextmanager
def database_errors(database_url: str) -> Iterator[None]:
    """Turn "cannot reach or open the database" into a ConfigError that says what to fix."""
    try:
        yield
    except (SQLAlchemyError, OSError, ImportError) as exc:
        raise ConfigError(
            f"cannot use the database {safe_url(database_url)}: {_reason(exc, database_url)}. "
            "Check UNDERSTUDY_DATABASE_URL (e.g. postgresql+asyncpg://user:password@host:5432/name; "
            "unset, it is a SQLite file in the data folder)."
        ) from None


def _reason(exc: BaseException, database_url: str) -> str:
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = str(cause).strip().splitlines()
    reason = lines[0] if lines else type(cause).__name__
    with contextlib.suppress(ArgumentError):
        password = make_url(database_url).password
        if password:
            reason = reason.replace(str(password), "***")
    return reason.rstrip(".")


def check_database(database_url: str) -> None:
    """Open one connection (creating a SQLite file's folder); ConfigError when that fails.

    `understudy serve` calls it before starting the server: a failure inside the app's start-up
    would otherwise surface as uvicorn's traceback. It costs one connection (a few ms).
    """

    async def ping() -> None:
        engine = make_engine(database_url, poolclass=pool.NullPool)
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        finally:
            await engine.dispose()

    with database_errors(database_url):
        path = _sqlite_path(database_url)
        if path is not None:
            private_dir(path.parent)
        _run_coroutine(ping)


def head_revision() -> str:
    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    assert head is not None, f"no migrations in {MIGRATIONS_DIR}"
    return head


def current_revision(database_url: str) -> str | None:
    """The revision the database is at; None for an empty (or missing SQLite) database."""
    path = _sqlite_path(database_url)
    if path is not None and not path.exists():
        return None  # do not create the file just to look

    async def read() -> str | None:
        engine = make_engine(database_url, poolclass=pool.NullPool)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(_revision_of)
        finally:
            await engine.dispose()

    return _run_coroutine(read)


def _revision_of(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


MIGRATION_LOCK = 0x756E6465_7273
"""The PostgreSQL advisory lock held while upgrading ("unders"): one upgrader at a time."""


def upgrade_database(database_url: str) -> None:
    """Bring the database to the newest migration; a no-op when it is already there.

    On PostgreSQL an advisory lock is held around it, so several processes or machines starting
    at once upgrade one after the other (the later ones find nothing to do). SQLite takes one
    writer at a time anyway, and Alembic's transaction makes the upgrade all or nothing.
    """
    path = _sqlite_path(database_url)
    if path is not None:
        private_dir(path.parent)
    cfg = alembic_config(database_url)
    if make_url(database_url).get_backend_name() != "postgresql":
        _run_in_own_thread_if_loop(lambda: command.upgrade(cfg, "head"))
        return

    async def locked() -> None:
        engine = make_engine(database_url, poolclass=pool.NullPool)
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
                try:
                    # Alembic runs its own event loop: in a thread, while this one holds the lock.
                    await asyncio.to_thread(command.upgrade, cfg, "head")
                finally:
                    await conn.execute(
                        text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK}
                    )
        finally:
            await engine.dispose()

    _run_coroutine(locked)


def downgrade_database(database_url: str, revision: str = "base") -> None:
    cfg = alembic_config(database_url)
    _run_in_own_thread_if_loop(lambda: command.downgrade(cfg, revision))


def run_upgrade() -> int:
    """`understudy db upgrade`: upgrade the configured database and say what changed."""
    from web.settings import database_url_from_env

    url = database_url_from_env()
    with database_errors(url):
        before = current_revision(url)
        upgrade_database(url)
        after = current_revision(url)
    where = safe_url(url)
    if before == after:
        click.echo(f"{where}: already at {after} (newest); nothing to do.")
    else:
        click.echo(f"{where}: upgraded from {before or 'an empty database'} to {after}.")
    return 0


def _sqlite_path(database_url: str) -> Path | None:
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database)


def _run_coroutine(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return _run_in_own_thread_if_loop(lambda: asyncio.run(make()))


def _run_in_own_thread_if_loop(fn: Callable[[], T]) -> T:
    """Run ``fn`` here, or in a helper thread when this thread already runs an event loop.

    The migrations drive the async engine with asyncio.run(), which refuses to run inside a loop
    (e.g. when the app upgrades from its lifespan). Blocking that loop briefly is fine at start.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return fn()
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(fn())
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=target, name="understudy-migrate")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]
