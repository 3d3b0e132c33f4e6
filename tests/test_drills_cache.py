"""web.drills reads the running drill at most once a second per process: turns that arrive
together must all see a drill that has just started (a drill's first, concurrent turns found no
faults when the second turn took the answer known before the first one's read came back)."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from web.drill_faults import DrillFault, FaultKind
from web.drills import Drills
from web.settings import Settings

from support.database import BACKENDS


@BACKENDS
async def test_turns_arriving_together_all_get_a_new_drills_faults(
    factory: async_sessionmaker[AsyncSession],
) -> None:
    drills = Drills(factory, Settings.from_env({}))
    assert await drills.faults_for(None) == (None, None)  # read (and cached): nothing runs
    drill = await drills.start(
        "test", [DrillFault("sonnet", FaultKind.OVERLOADED)], instance_wide=False, ttl_s=60
    )
    seen = await asyncio.gather(*(drills.faults_for(drill.id) for _ in range(4)))
    assert [flag for flag, _ in seen] == [drill.id] * 4
    assert all(faults is not None and "sonnet" in faults.faults for _, faults in seen)

    await drills.end(drill.id, "pass", None, None)
    after = await asyncio.gather(*(drills.faults_for(drill.id) for _ in range(4)))
    assert after == [(drill.id, None)] * 4  # no faults; still flagged (its recovery check)
