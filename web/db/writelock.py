"""SQLite write transactions, one at a time, queued in the event loop; urgent ones first.

SQLite has one writer at a time. Left to itself, a second writer gets SQLITE_BUSY and its busy
handler sleeps in growing steps (up to 100 ms) before trying again; under load the sleepers
convoy into seconds of waiting and finally "database is locked". Queued here instead, the next
writer starts the moment the previous one commits.

Writes a user is waiting for (storing their message and opening the turn, before the model is
called) are marked urgent with :func:`urgent_writes` and overtake background writes (a finished
turn's outcome), which only delay the end of a stream that has already shown its text.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

_URGENT: ContextVar[bool] = ContextVar("understudy_urgent_write", default=False)


@contextmanager
def urgent_writes() -> Iterator[None]:
    """Writes inside this block (in this task) go to the front of the queue."""
    token = _URGENT.set(True)
    try:
        yield
    finally:
        _URGENT.reset(token)


class WriteQueue:
    """A FIFO lock with two lanes. Held from BEGIN to COMMIT of one write transaction."""

    def __init__(self) -> None:
        self._held = False
        self._urgent: deque[asyncio.Future[None]] = deque()
        self._normal: deque[asyncio.Future[None]] = deque()

    async def acquire(self, urgent: bool) -> None:
        if not self._held and not self._urgent and not self._normal:
            self._held = True
            return
        waiter = asyncio.get_running_loop().create_future()
        (self._urgent if urgent else self._normal).append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # it was handed to us as we were cancelled: pass it on
            else:
                (self._urgent if urgent else self._normal).remove(waiter)
            raise

    def release(self) -> None:
        for lane in (self._urgent, self._normal):
            while lane:
                waiter = lane.popleft()
                if not waiter.done():
                    waiter.set_result(None)  # handed over: stays held
                    return
        self._held = False


_QUEUES: weakref.WeakKeyDictionary[Engine, WriteQueue] = weakref.WeakKeyDictionary()


@asynccontextmanager
async def write_slot(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[None]:
    """Hold the write queue of `factory`'s SQLite engine (no-op for other databases)."""
    bind = factory.kw.get("bind")
    if not isinstance(bind, AsyncEngine) or bind.dialect.name != "sqlite":
        yield
        return
    queue = _QUEUES.get(bind.sync_engine)
    if queue is None:
        queue = _QUEUES[bind.sync_engine] = WriteQueue()
    await queue.acquire(_URGENT.get())
    try:
        yield
    finally:
        queue.release()
