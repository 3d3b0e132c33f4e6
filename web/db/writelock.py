"""SQLite write transactions, one at a time, queued in the event loop; urgent ones first.

SQLite has one writer at a time. Left to itself, a second writer gets SQLITE_BUSY and its busy
handler sleeps in growing steps (up to 100 ms) before trying again; under load the sleepers
convoy into seconds of waiting and finally "database is locked". Queued here instead, the next
writer starts the moment the previous one commits.

Writes a user is waiting for (storing their message and opening the turn, before the model is
called) are marked urgent with :func:`urgent_writes` and overtake ordinary writes (a finished
turn's outcome), which only delay the end of a stream that has already shown its text. Writes
marked with :func:`background_writes` (checkpoints of a live reply's text) go last: they only
matter if the server dies, and may wait behind everything else.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from contextvars import ContextVar

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

URGENT, NORMAL, BACKGROUND = 0, 1, 2
"""Write priorities (lanes of the queue), first served first."""

_PRIORITY: ContextVar[int] = ContextVar("understudy_write_priority", default=NORMAL)


@contextmanager
def _writes_at(priority: int) -> Iterator[None]:
    token = _PRIORITY.set(priority)
    try:
        yield
    finally:
        _PRIORITY.reset(token)


def urgent_writes() -> AbstractContextManager[None]:
    """Writes inside this block (in this task) go to the front of the queue."""
    return _writes_at(URGENT)


def background_writes() -> AbstractContextManager[None]:
    """Writes inside this block (in this task) wait until no other write is queued."""
    return _writes_at(BACKGROUND)


class WriteQueue:
    """A FIFO lock with three lanes. Held from BEGIN to COMMIT of one write transaction."""

    def __init__(self) -> None:
        self._held = False
        self._lanes: tuple[deque[asyncio.Future[None]], ...] = (deque(), deque(), deque())

    async def acquire(self, urgent: bool = False, *, priority: int | None = None) -> None:
        """Wait for the lock; `priority` (URGENT, NORMAL, BACKGROUND) overrides `urgent`."""
        if priority is None:
            priority = URGENT if urgent else NORMAL
        if not self._held and not any(self._lanes):
            self._held = True
            return
        waiter = asyncio.get_running_loop().create_future()
        lane = self._lanes[priority]
        lane.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # it was handed to us as we were cancelled: pass it on
            else:
                lane.remove(waiter)
            raise

    def release(self) -> None:
        for lane in self._lanes:
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
    await queue.acquire(priority=_PRIORITY.get())
    try:
        yield
    finally:
        queue.release()
