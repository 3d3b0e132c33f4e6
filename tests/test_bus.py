"""web.bus on the local Redis: two Bus objects are two processes of one deployment."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from web.bus import Bus
from web.landings import LANDED, Landings

from support.cluster import REDIS_URL, redis_or_skip

WITHIN_S = 30.0


async def test_a_message_reaches_the_other_process_and_not_its_sender() -> None:
    redis_or_skip()
    prefix = f"understudy-test-{uuid.uuid4().hex[:12]}:"
    here, there = Bus(REDIS_URL, prefix, "here"), Bus(REDIS_URL, prefix, "there")
    heard: dict[str, list[dict[str, Any]]] = {"here": [], "there": []}
    got = asyncio.Event()
    here.on("stop", heard["here"].append)

    def there_heard(message: dict[str, Any]) -> None:
        heard["there"].append(message)
        got.set()

    there.on("stop", there_heard)
    await here.start()
    await there.start()
    try:
        assert await here.send("stop", turn="t1")
        async with asyncio.timeout(WITHIN_S):
            await got.wait()
        assert heard["there"] == [{"op": "stop", "from": "here", "turn": "t1"}]
        assert heard["here"] == []
    finally:
        await here.aclose()
        await there.aclose()


async def test_a_landing_wakes_the_pages_waiting_in_another_process() -> None:
    redis_or_skip()
    prefix = f"understudy-test-{uuid.uuid4().hex[:12]}:"
    here, there = Bus(REDIS_URL, prefix, "here"), Bus(REDIS_URL, prefix, "there")
    ours, theirs = Landings(), Landings()
    ours.relay = lambda turn_id: here.post(LANDED, turn=turn_id)
    there.on(LANDED, lambda message: theirs.heard(str(message["turn"])))
    await here.start()
    await there.start()
    try:
        waiting = asyncio.create_task(theirs.wait("t1", timeout_s=WITHIN_S))
        await asyncio.sleep(0)  # the page is waiting
        assert len(theirs) == 1
        loop = asyncio.get_running_loop()
        started = loop.time()
        ours.notify("t1")
        await waiting
        # Woken by the notice, long before its own timeout would have ended the wait.
        assert loop.time() - started < WITHIN_S / 2
    finally:
        await here.aclose()
        await there.aclose()


async def test_a_bus_without_redis_never_fails_its_caller() -> None:
    bus = Bus("redis://127.0.0.1:1/0", "understudy-test-down:", "here")
    await bus.start()
    try:
        assert await bus.send("stop", turn="t1") is False
    finally:
        await bus.aclose()
