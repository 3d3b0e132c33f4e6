"""Telling the pages of queued turns that their reply landed (or the turn otherwise ended).

A worker in this process notifies at once; a worker in another process (`understudy worker`, a
second server) is seen by the stream's poll of the turn's row (web.routes.stream), so a reply
shows within a few seconds wherever it was fetched.
"""

from __future__ import annotations

import asyncio
import contextlib


class Landings:
    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def notify(self, turn_id: str) -> None:
        event = self._events.pop(turn_id, None)
        if event is not None:
            event.set()

    async def wait(self, turn_id: str, timeout_s: float) -> None:
        """Until ``turn_id`` is notified, or ``timeout_s`` passes (then look at the database)."""
        event = self._events.setdefault(turn_id, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await event.wait()
