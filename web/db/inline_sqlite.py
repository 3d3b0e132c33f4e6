"""SQLite without a thread hop per call: an aiosqlite-shaped connection that runs ``sqlite3`` on
the event loop's own thread, and waits for a lock in a thread only when it has to.

Why: aiosqlite runs every call (a cursor, an execute, a fetch, a close, a BEGIN, a commit) in its
connection's thread and wakes the loop for each result. A reply's turn makes about 65 such calls
(its POST alone 40), and each cost 0.3-0.4 ms of CPU in thread switches, GIL handovers and
wake-ups, about a third of a turn's database CPU; the thread also took the GIL from the loop while
streams were being written. Measured with ``bench/app_streams.py --chats 100``, one worker, two
runs each, alternated on a 2-core machine: 1.020 and 1.050 ms of server CPU per token through
aiosqlite's thread (``--sqlite-thread``), 0.803 and 0.882 ms inline; TTFT p99 added +3.0 to
+3.6 s, and +1.6 to +1.7 s.

What it costs: a statement runs on the loop, so while it runs nothing else in the process does.
The app's statements are short (indexed lookups, one conversation's rows, batched writes), and
under WAL with ``synchronous=NORMAL`` a commit does not wait for the disk; the exception is the
automatic WAL checkpoint, a few milliseconds of copying every ~4 MB written.

A lock is never waited for on the loop: the connection's own busy timeout is 0, so a statement
that finds the database locked by another process (a second server, the queue worker, the
`understudy` CLI) fails at once with SQLITE_BUSY, and is then run again in a thread with the
busy timeout the app set (``PRAGMA busy_timeout``, web.db.session). A statement refused with
SQLITE_BUSY did nothing, so running it again is safe. In-process writers never meet: they take
turns (web.db.writelock).

SQLAlchemy's aiosqlite dialect drives it (``create_async_engine(async_creator=...)``): the
connection offers what that dialect uses of ``aiosqlite.Connection`` (``cursor``, ``commit``,
``rollback``, ``close``, ``stop``, ``create_function``, and the ``_conn``/``_tx`` pair through
which it sets ``isolation_level``).
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Awaitable, Callable, Generator, Iterable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

_BUSY_PRAGMA = re.compile(r"^\s*PRAGMA\s+busy_timeout\s*=\s*(\d+)\s*$", re.IGNORECASE)
DEFAULT_BUSY_TIMEOUT_MS = 5000
"""Until the app sets its own (PRAGMA busy_timeout)."""


def _busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return bool(code & 0xFF == sqlite3.SQLITE_BUSY)
    return "locked" in str(exc)


class InlineConnection:
    """One ``sqlite3`` connection, used by one task at a time (SQLAlchemy's pool sees to it)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._connection: sqlite3.Connection | None = conn
        """None once closed (the dialect checks it before a rollback or a commit)."""
        self._tx = _Immediate()
        self.busy_timeout_ms = DEFAULT_BUSY_TIMEOUT_MS
        """How long a locked statement waits, in a thread; the connection itself never waits."""
        conn.execute("PRAGMA busy_timeout=0")

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    def cursor(self) -> _NewCursor:
        return _NewCursor(self)

    async def commit(self) -> None:
        await self.run(self._conn.commit)

    async def rollback(self) -> None:
        await self.run(self._conn.rollback)

    async def close(self) -> None:
        if self._connection is not None:
            self._connection = None
            self._conn.close()

    def stop(self) -> None:
        """The dialect's forced close (a connection being thrown away)."""
        self._connection = None
        self._conn.close()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    async def run(self, call: Callable[[], T]) -> T:
        """``call()`` here; if the database is locked, again in a thread, allowed to wait."""
        try:
            return call()
        except sqlite3.OperationalError as exc:
            if not _busy(exc):
                raise
        return await asyncio.to_thread(self._waiting, call)

    def _waiting(self, call: Callable[[], T]) -> T:
        self._conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
        try:
            return call()
        finally:
            self._conn.execute("PRAGMA busy_timeout=0")


class _Immediate:
    """aiosqlite's queue of calls for its thread, as the dialect uses it (to set the isolation
    level): here the call runs at once."""

    def put_nowait(self, item: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, function = item
        try:
            future.set_result(function())
        except Exception as exc:
            future.set_exception(exc)


class _NewCursor:
    """What ``cursor()`` returns: awaited, or entered with ``async with``."""

    def __init__(self, connection: InlineConnection) -> None:
        self._connection = connection

    def __await__(self) -> Generator[Any, None, InlineCursor]:
        return self._make().__await__()

    async def _make(self) -> InlineCursor:
        return InlineCursor(self._connection, self._connection._conn.cursor())

    async def __aenter__(self) -> InlineCursor:
        return await self._make()

    async def __aexit__(self, *exc: object) -> None:
        pass


class InlineCursor:
    def __init__(self, connection: InlineConnection, cursor: sqlite3.Cursor) -> None:
        self._connection = connection
        self._cursor = cursor

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def __aenter__(self) -> InlineCursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._cursor.close()

    async def execute(self, sql: str, parameters: Any = None) -> InlineCursor:
        timeout = _BUSY_PRAGMA.match(sql)
        if timeout is not None:  # the app's busy timeout: kept for the waits in a thread
            self._connection.busy_timeout_ms = int(timeout.group(1))
            return self
        args: tuple[Any, ...] = (sql,) if parameters is None else (sql, parameters)
        await self._connection.run(lambda: self._cursor.execute(*args))
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> InlineCursor:
        rows = list(parameters)  # a retry in a thread must see them all again
        await self._connection.run(lambda: self._cursor.executemany(sql, rows))
        return self

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(self._cursor.arraysize if size is None else size)

    async def close(self) -> None:
        self._cursor.close()


def connector(
    connect_args: Callable[[], tuple[Sequence[Any], dict[str, Any]]],
) -> Callable[[], Awaitable[InlineConnection]]:
    """An ``async_creator`` for ``create_async_engine``: ``connect_args()`` gives the dialect's
    ``sqlite3.connect`` arguments for the engine's URL (its file, ``uri``)."""

    async def connect() -> InlineConnection:
        args, kwargs = connect_args()
        kwargs = {**kwargs, "check_same_thread": False}  # a locked statement waits in a thread
        kwargs.pop("timeout", None)  # the connection never waits (busy_timeout 0)
        return InlineConnection(sqlite3.connect(*args, **kwargs))

    return connect
