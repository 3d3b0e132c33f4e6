"""web.trash: the Undo offer's length, and the sweep that sleeps until the oldest deletion is due.
Time is stepped by the tests (an injected clock and sleep); the database is a real SQLite file."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from web.db import chat
from web.db import trash as db
from web.db.migrate import upgrade_database
from web.db.session import Factory, make_engine, make_sessionmaker
from web.errors import NotFound
from web.trash import KEEP_S, UNDO_S, Trash, UndoOffer

OWNER = "a" * 64
T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
BOUND_S = 10.0
"""An upper bound for the sweep task to act once it may: never reached on a working machine."""


class SteppedTime:
    """A clock that moves only when the sweep sleeps, and only once the test lets it."""

    def __init__(self) -> None:
        self.now = T0
        self.asked: asyncio.Queue[float] = asyncio.Queue()
        self.go = asyncio.Event()

    def clock(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.asked.put_nowait(seconds)
        await self.go.wait()
        self.go.clear()
        self.now += timedelta(seconds=seconds)

    async def next_sleep(self) -> float:
        return await asyncio.wait_for(self.asked.get(), BOUND_S)


class WatchedTrash(Trash):
    """Says when its sweep task has purged."""

    def __init__(self, sessions: Factory, time: SteppedTime) -> None:
        super().__init__(sessions, clock=time.clock, sleep=time.sleep)
        self.swept: asyncio.Queue[int] = asyncio.Queue()

    async def sweep(self) -> int:
        purged = await super().sweep()
        self.swept.put_nowait(purged)
        return purged

    async def next_sweep(self) -> int:
        return await asyncio.wait_for(self.swept.get(), BOUND_S)


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[Factory]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'trash.db'}"
    await asyncio.to_thread(upgrade_database, url)
    engine = make_engine(url)
    try:
        yield make_sessionmaker(engine)
    finally:
        await engine.dispose()


async def test_the_offer_lasts_undo_s_and_ends_with_keep_s(sessions: Factory) -> None:
    time = SteppedTime()
    trash = Trash(sessions, clock=time.clock)
    conversation = (await chat.start_conversation(sessions, OWNER, "bye")).conversation_id
    assert await trash.offer(OWNER, conversation) is None  # not deleted
    await trash.delete(OWNER, conversation)
    assert await trash.offer(OWNER, conversation) == UndoOffer(conversation, "bye", UNDO_S)
    time.now = T0 + timedelta(seconds=KEEP_S - 2.5)
    assert await trash.offer(OWNER, conversation) == UndoOffer(conversation, "bye", 3)
    time.now = T0 + timedelta(seconds=KEEP_S)
    assert await trash.offer(OWNER, conversation) is None
    with pytest.raises(NotFound):
        await trash.restore(OWNER, conversation)


async def test_the_sweep_waits_for_the_oldest_deletion_then_purges_it(sessions: Factory) -> None:
    time = SteppedTime()
    trash = WatchedTrash(sessions, time)
    first = (await chat.start_conversation(sessions, OWNER, "first")).conversation_id
    second = (await chat.start_conversation(sessions, OWNER, "second")).conversation_id
    await trash.delete(OWNER, first)
    time.now += timedelta(seconds=20)
    await trash.delete(OWNER, second)
    trash.start()  # as at a start of the app, with deletions left by the previous run
    try:
        assert await time.next_sleep() == KEEP_S - 20  # the first one is due then, from now
        assert await db.find_deleted(sessions, OWNER, first) is not None  # not before
        time.go.set()
        assert await trash.next_sweep() == 1
        assert await db.find_deleted(sessions, OWNER, first) is None
        assert await time.next_sleep() == pytest.approx(20)  # then the second one
        assert await db.find_deleted(sessions, OWNER, second) is not None
        time.go.set()
        assert await trash.next_sweep() == 1
        assert await db.find_deleted(sessions, OWNER, second) is None
    finally:
        await trash.close()


async def test_an_undone_deletion_is_not_purged(sessions: Factory) -> None:
    time = SteppedTime()
    trash = WatchedTrash(sessions, time)
    conversation = (await chat.start_conversation(sessions, OWNER, "keep")).conversation_id
    trash.start()
    try:
        await trash.delete(OWNER, conversation)  # wakes the idle sweep
        assert await time.next_sleep() == KEEP_S
        await trash.restore(OWNER, conversation)
        time.go.set()
        assert await trash.next_sweep() == 0
        await chat.get_conversation(sessions, OWNER, conversation)  # there, and not deleted
    finally:
        await trash.close()


async def test_an_idle_sweep_looks_again_after_keep_s_for_another_process_deletions(
    sessions: Factory,
) -> None:
    time = SteppedTime()
    trash = WatchedTrash(sessions, time)
    conversation = (await chat.start_conversation(sessions, OWNER, "elsewhere")).conversation_id
    trash.start()
    try:
        assert await time.next_sleep() == KEEP_S  # nothing deleted: it looks again then
        # Another process deletes it: nothing wakes this one's sweep.
        await db.mark_deleted(sessions, OWNER, conversation, time.clock())
        time.go.set()
        assert await trash.next_sweep() == 1
        assert await db.find_deleted(sessions, OWNER, conversation) is None
    finally:
        await trash.close()
