"""web.processes: leases, the sweep of dead processes' turns, on both databases.

Several processes are played in one: each ProcessLease gets its own host or pid and the test's
clock, and the test calls start() and beat() itself (or steps the beat loop's sleep), so no
test waits for a lease to run out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from web.db.models import Message, Process, Turn, utcnow
from web.db.session import read_scope, session_scope
from web.db.turnlog import Checkpoint, checkpoint_turns
from web.processes import BEATS_PER_LEASE, ProcessLease
from web.status import TurnStatus
from web.wording import INTERRUPTED_MESSAGE

from support.database import BACKENDS, add_user_message, start_turn
from support.outcomes import SONNET

Factory = async_sessionmaker[AsyncSession]
LEASE_S = 15.0
ORPHAN_AFTER_S = 200.0


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def lease(
    factory: Factory,
    clock: Clock,
    *,
    host: str = "machine-a",
    pid: int = 1000,
    alive: Callable[[int], bool] = lambda _pid: True,
) -> ProcessLease:
    return ProcessLease(
        factory,
        lease_s=LEASE_S,
        orphan_after_s=ORPHAN_AFTER_S,
        clock=clock,
        host=host,
        pid=pid,
        alive=alive,
    )


async def streaming_turn(factory: Factory, process_id: str | None, saved: str = "Half a re") -> str:
    """A turn a process is writing, with ``saved`` checkpointed."""
    conversation_id, message_id = await add_user_message(factory)
    turn_id, _ = await start_turn(
        factory, conversation_id=conversation_id, user_message_id=message_id, process_id=process_id
    )
    assert await checkpoint_turns(factory, [Checkpoint(turn_id, saved, SONNET, None)]) == 1
    return turn_id


async def turn_state(factory: Factory, turn_id: str) -> tuple[str, str, str | None, str | None]:
    """(status, reply text, tier, error message)."""
    async with read_scope(factory) as session:
        turn = await session.get_one(Turn, turn_id)
        reply = await session.scalar(select(Message.content).where(Message.turn_id == turn_id))
        assert reply is not None
        return turn.status, reply, turn.tier, turn.error_message


async def process_rows(factory: Factory) -> dict[str, datetime]:
    async with read_scope(factory) as session:
        return {p.id: p.lease_until for p in await session.scalars(select(Process))}


INTERRUPTED = (TurnStatus.INTERRUPTED, "Half a re", "sonnet", INTERRUPTED_MESSAGE)
STREAMING = (TurnStatus.STREAMING, "Half a re", "sonnet", None)


@BACKENDS
async def test_a_beat_renews_the_lease_and_close_gives_it_up(factory: Factory) -> None:
    clock = Clock()
    mine = lease(factory, clock)
    await mine.start()
    assert await process_rows(factory) == {mine.id: clock.now + timedelta(seconds=LEASE_S)}
    clock.advance(LEASE_S / BEATS_PER_LEASE)
    await mine.beat()
    assert await process_rows(factory) == {mine.id: clock.now + timedelta(seconds=LEASE_S)}
    await mine.close()
    assert await process_rows(factory) == {}


@BACKENDS
async def test_a_survivor_interrupts_a_dead_process_turn_once_its_lease_has_run_out(
    factory: Factory,
) -> None:
    clock = Clock()
    first, second = lease(factory, clock, host="machine-a"), lease(factory, clock, host="machine-b")
    await first.start()
    turn_id = await streaming_turn(factory, first.id)

    await second.start()  # a start never touches a live process's turns
    assert await turn_state(factory, turn_id) == STREAMING
    clock.advance(LEASE_S)  # the first stops beating: its lease ends exactly now
    assert (await second.beat()).turns == 0
    assert await turn_state(factory, turn_id) == STREAMING

    clock.advance(1)
    swept = await second.beat()
    assert (swept.turns, swept.processes) == (1, 1)
    assert await turn_state(factory, turn_id) == INTERRUPTED
    assert set(await process_rows(factory)) == {second.id}


@BACKENDS
async def test_the_turns_of_a_live_process_are_never_touched_by_another(factory: Factory) -> None:
    clock = Clock()
    first, second = lease(factory, clock, host="machine-a"), lease(factory, clock, host="machine-b")
    await first.start()
    turn_id = await streaming_turn(factory, first.id)
    await second.start()
    for _ in range(2 * BEATS_PER_LEASE):
        clock.advance(LEASE_S / BEATS_PER_LEASE)
        await first.beat()
        await second.beat()
    third = lease(factory, clock, host="machine-c")
    await third.start()
    assert await turn_state(factory, turn_id) == STREAMING
    assert set(await process_rows(factory)) == {first.id, second.id, third.id}


@BACKENDS
async def test_a_start_on_the_same_machine_interrupts_the_turns_of_a_pid_that_is_gone(
    factory: Factory,
) -> None:
    clock = Clock()
    crashed = lease(factory, clock, pid=111)
    await crashed.start()
    turn_id = await streaming_turn(factory, crashed.id)
    elsewhere = lease(factory, clock, host="machine-b", pid=111)
    await elsewhere.start()  # pid 111 is not this machine's to check
    assert await turn_state(factory, turn_id) == STREAMING

    restarted = lease(factory, clock, pid=222, alive=lambda pid: pid != 111)
    swept = await restarted.start()  # within the crashed process's lease
    assert (swept.turns, swept.processes) == (1, 1)
    assert await turn_state(factory, turn_id) == INTERRUPTED
    assert set(await process_rows(factory)) == {elsewhere.id, restarted.id}


@BACKENDS
async def test_a_start_under_its_own_pid_takes_another_id_with_that_pid_for_dead(
    factory: Factory,
) -> None:
    """A restarted container: the same host name, pid 1 again, and pid 1 exists (it is us)."""
    clock = Clock()
    before = lease(factory, clock, pid=1)
    await before.start()
    turn_id = await streaming_turn(factory, before.id)
    after = lease(factory, clock, pid=1)
    await after.start()
    assert await turn_state(factory, turn_id) == INTERRUPTED


@BACKENDS
async def test_turns_with_no_process_are_interrupted_at_start_only(factory: Factory) -> None:
    clock = Clock()
    before_processes = await streaming_turn(factory, None)
    mine = lease(factory, clock)
    assert (await mine.start()).turns == 1
    assert await turn_state(factory, before_processes) == INTERRUPTED

    made_by_a_tool = await streaming_turn(factory, None)
    await mine.beat()
    assert await turn_state(factory, made_by_a_tool) == STREAMING


class SteppedSleep:
    """The beat loop's sleep, stepped by the test: step() lets one beat run to its next sleep."""

    def __init__(self) -> None:
        self.calls: list[float] = []
        self._asleep: asyncio.Queue[None] = asyncio.Queue()
        self._wake: asyncio.Queue[None] = asyncio.Queue()

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        await self._asleep.put(None)
        await self._wake.get()

    async def asleep(self) -> None:
        await asyncio.wait_for(self._asleep.get(), 30)

    async def step(self) -> None:
        self._wake.put_nowait(None)
        await self.asleep()


@BACKENDS
async def test_a_database_error_in_a_beat_is_logged_and_the_next_beat_renews(
    factory: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    clock, sleep = Clock(), SteppedSleep()
    mine = ProcessLease(
        factory, lease_s=LEASE_S, orphan_after_s=ORPHAN_AFTER_S, clock=clock, sleep=sleep
    )
    await mine.start()
    mine.beat_in_background(lambda _turn_id: False)
    try:
        await sleep.asleep()
        async with session_scope(factory) as session:
            await session.execute(text("ALTER TABLE processes RENAME TO processes_away"))
        clock.advance(5)
        with caplog.at_level(logging.ERROR, logger="web.processes"):
            await sleep.step()
        assert "heartbeat failed; trying again next beat" in caplog.text
        async with session_scope(factory) as session:
            await session.execute(text("ALTER TABLE processes_away RENAME TO processes"))
        clock.advance(5)
        await sleep.step()
        assert await process_rows(factory) == {mine.id: clock.now + timedelta(seconds=LEASE_S)}
        assert sleep.calls == [LEASE_S / BEATS_PER_LEASE] * 3
    finally:
        await mine.close()


@BACKENDS
async def test_a_process_interrupts_its_own_turns_its_runner_lost_once_they_are_too_old(
    factory: Factory,
) -> None:
    clock = Clock()
    mine = ProcessLease(
        factory, lease_s=LEASE_S, orphan_after_s=ORPHAN_AFTER_S, clock=clock, sleep=SteppedSleep()
    )
    await mine.start()
    running = await streaming_turn(factory, mine.id)
    lost = await streaming_turn(factory, mine.id)  # its outcome could not be written
    mine.beat_in_background(lambda turn_id: turn_id == running)  # never stepped: beats by hand
    try:
        clock.advance(ORPHAN_AFTER_S - 5)
        assert (await mine.beat()).orphans == 0
        clock.advance(10)
        assert (await mine.beat()).orphans == 1
        assert await turn_state(factory, lost) == INTERRUPTED
        assert await turn_state(factory, running) == STREAMING
    finally:
        await mine.close()
