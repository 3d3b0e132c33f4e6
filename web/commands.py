"""Stop and "Answer now" for a turn, whichever process runs it.

A turn running in this process is told directly (web.runner). With several processes
(UNDERSTUDY_REDIS_URL) a turn running elsewhere is told through the bus (web.bus): every process
hears the command and the one running the turn acts. Stop then waits, as it does here, until the
turn has ended, by following the turn's live stream to its end (web.live_redis): when it returns,
the stopped turn's final state is in the database, whoever wrote it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from web.bus import Bus
from web.live import LiveTurns
from web.runner import STOP_WAIT_S, TurnRunner

log = logging.getLogger(__name__)

STOP, SKIP = "stop", "skip"


class TurnCommands:
    def __init__(self, runner: TurnRunner, live_turns: LiveTurns, bus: Bus | None) -> None:
        self._runner = runner
        self._live_turns = live_turns
        self._bus = bus
        self._stops: set[asyncio.Task[bool]] = set()
        if bus is not None:
            bus.on(STOP, self._heard_stop)
            bus.on(SKIP, self._heard_skip)

    async def stop(self, turn_id: str) -> None:
        """Cancel the turn wherever it runs and wait until its outcome is written (at most
        STOP_WAIT_S: a process that does not answer is left to the sweep of dead processes)."""
        if await self._runner.stop(turn_id) or self._bus is None:
            return
        subscription = await self._live_turns.follow(turn_id)
        # Sent even when nothing was published for it yet (its POST was answered a moment ago,
        # or Redis missed its writes): a command for a turn nobody runs is ignored.
        await self._bus.send(STOP, turn=turn_id)
        if subscription is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STOP_WAIT_S):
                async for _ in subscription.updates:
                    pass

    async def skip(self, turn_id: str, attempt: int) -> None:
        if self._runner.is_running(turn_id):
            self._runner.skip(turn_id, attempt)
        elif self._bus is not None:
            await self._bus.send(SKIP, turn=turn_id, attempt=attempt)

    def _heard_stop(self, message: dict[str, Any]) -> None:
        turn_id = str(message.get("turn"))
        if self._runner.is_running(turn_id):
            task = asyncio.create_task(self._runner.stop(turn_id), name=f"stop-{turn_id}")
            self._stops.add(task)
            task.add_done_callback(self._stops.discard)

    def _heard_skip(self, message: dict[str, Any]) -> None:
        turn_id = str(message.get("turn"))
        attempt = message.get("attempt")
        if isinstance(attempt, int) and self._runner.is_running(turn_id):
            self._runner.skip(turn_id, attempt)
