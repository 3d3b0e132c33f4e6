"""The SQLite write queue: one writer at a time, urgent writers first, cancellation-safe."""

from __future__ import annotations

import asyncio

from web.db.writelock import BACKGROUND, NORMAL, URGENT, WriteQueue


async def test_waiters_are_served_urgent_first_then_in_order() -> None:
    queue = WriteQueue()
    await queue.acquire(urgent=False)
    order: list[str] = []

    async def writer(name: str, urgent: bool) -> None:
        await queue.acquire(urgent)
        order.append(name)
        queue.release()

    tasks = [
        asyncio.create_task(writer("normal-1", False)),
        asyncio.create_task(writer("normal-2", False)),
        asyncio.create_task(writer("urgent-1", True)),
        asyncio.create_task(writer("urgent-2", True)),
    ]
    await asyncio.sleep(0)  # all four are queued behind the holder
    assert order == []
    queue.release()
    await asyncio.gather(*tasks)
    assert order == ["urgent-1", "urgent-2", "normal-1", "normal-2"]


async def test_a_cancelled_waiter_never_keeps_the_lock() -> None:
    queue = WriteQueue()
    await queue.acquire(urgent=False)
    cancelled = asyncio.create_task(queue.acquire(urgent=True))
    later = asyncio.create_task(queue.acquire(urgent=False))
    await asyncio.sleep(0)
    queue.release()  # handed to `cancelled`...
    cancelled.cancel()  # ...which is cancelled before it runs: it must pass the lock on
    await asyncio.wait_for(later, 1.0)
    queue.release()
    await queue.acquire(urgent=False)  # free again
    queue.release()


async def test_background_writers_wait_for_every_other_writer() -> None:
    queue = WriteQueue()
    await queue.acquire()
    order: list[str] = []

    async def writer(name: str, priority: int) -> None:
        await queue.acquire(priority=priority)
        order.append(name)
        queue.release()

    tasks = [
        asyncio.create_task(writer("background", BACKGROUND)),
        asyncio.create_task(writer("normal", NORMAL)),
        asyncio.create_task(writer("urgent", URGENT)),
    ]
    await asyncio.sleep(0)
    queue.release()
    await asyncio.gather(*tasks)
    assert order == ["urgent", "normal", "background"]


async def test_a_background_writer_is_not_starved_by_a_steady_stream_of_writers() -> None:
    # The queue reads the loop's real clock. The first release comes two loop turns after the
    # background writer queued; with 0.05 s, one pause of the process made it overdue already.
    queue = WriteQueue(background_max_wait_s=0.5)
    await queue.acquire()
    background = asyncio.create_task(queue.acquire(priority=BACKGROUND))
    await asyncio.sleep(0)
    normal = asyncio.create_task(queue.acquire(priority=NORMAL))
    await asyncio.sleep(0)
    queue.release()  # the background writer has not waited long: the normal one goes first
    await asyncio.wait_for(normal, 1.0)
    assert not background.done()
    await asyncio.sleep(0.6)
    urgent = asyncio.create_task(queue.acquire(priority=URGENT))
    await asyncio.sleep(0)
    queue.release()  # now it has: it goes before the urgent one
    await asyncio.wait_for(background, 1.0)
    assert not urgent.done()
    queue.release()
    await asyncio.wait_for(urgent, 1.0)
    queue.release()
