"""Landings: a notified stream wakes at once; nothing is kept once no stream waits."""

from __future__ import annotations

import asyncio

from sim.conftest import bounded

from web.landings import Landings


@bounded(5)
async def test_a_notify_wakes_every_waiter_and_leaves_nothing_behind() -> None:
    landings = Landings()
    waiters = [asyncio.create_task(landings.wait("t1", timeout_s=3600)) for _ in range(3)]
    await asyncio.sleep(0)
    assert len(landings) == 1
    landings.notify("t1")
    await asyncio.gather(*waiters)  # well before the hour: the bound above is 5 s
    assert len(landings) == 0


@bounded(5)
async def test_a_wait_that_times_out_forgets_its_turn() -> None:
    landings = Landings()
    await landings.wait("t2", timeout_s=0.01)
    assert len(landings) == 0
    landings.notify("never-waited")  # harmless
    assert len(landings) == 0
