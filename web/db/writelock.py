"""SQLite write transactions, one at a time, queued in the event loop; urgent ones first.

SQLite has one writer at a time. Left to itself, a second writer gets SQLITE_BUSY and its busy
handler sleeps in growing steps (up to 100 ms) before trying again; under load the sleepers
convoy into seconds of waiting and finally "database is locked". Queued here instead, the next
writer starts the moment the previous one commits.

Writes a user is waiting for (storing their message and opening the turn, before the model is
called) are marked urgent with :func:`urgent_writes` and overtake ordinary writes (a finished
turn's outcome), which only delay the end of a stream that has already shown its text. Writes
marked with :func:`background_writes` (checkpoints of a live reply's text) go last: they only
matter if the server dies. So that they are not starved under sustained load, one that has waited
BACKGROUND_MAX_WAIT_S goes next.
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

BACKGROUND_MAX_WAIT_S = 1.0

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

    def __init__(self, background_max_wait_s: float = BACKGROUND_MAX_WAIT_S) -> None:
        self._held = False
        self._lanes: tuple[deque[asyncio.Future[None]], ...] = (deque(), deque(), deque())
        self._background_max_wait_s = background_max_wait_s
        self._queued_at: dict[asyncio.Future[None], float] = {}
        """When each background waiter was queued."""

    async def acquire(self, urgent: bool = False, *, priority: int | None = None) -> None:
        """Wait for the lock; `priority` (URGENT, NORMAL, BACKGROUND) overrides `urgent`."""
        if priority is None:
            priority = URGENT if urgent else NORMAL
        if not self._held and not any(self._lanes):
            self._held = True
            return
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        lane = self._lanes[priority]
        lane.append(waiter)
        if priority == BACKGROUND:
            self._queued_at[waiter] = loop.time()
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # it was handed to us as we were cancelled: pass it on
            else:
                lane.remove(waiter)
            raise
        finally:
            self._queued_at.pop(waiter, None)

    def release(self) -> None:
        background = self._lanes[BACKGROUND]
        if background and self._overdue(background[0]):
            lanes: tuple[deque[asyncio.Future[None]], ...] = (background, *self._lanes[:BACKGROUND])
        else:
            lanes = self._lanes
        for lane in lanes:
            while lane:
                waiter = lane.popleft()
                if not waiter.done():
                    waiter.set_result(None)  # handed over: stays held
                    return
        self._held = False

    def _overdue(self, waiter: asyncio.Future[None]) -> bool:
        queued = self._queued_at.get(waiter)
        return (
            queued is not None and waiter.get_loop().time() - queued >= self._background_max_wait_s
        )


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
