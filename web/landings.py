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
        self._waiting: dict[str, tuple[asyncio.Event, int]] = {}
        """turn id -> (its event, how many streams wait on it)."""

    def __len__(self) -> int:
        return len(self._waiting)

    def notify(self, turn_id: str) -> None:
        entry = self._waiting.get(turn_id)
        if entry is not None:
            entry[0].set()

    async def wait(self, turn_id: str, timeout_s: float) -> None:
        """Until ``turn_id`` is notified, or ``timeout_s`` passes (then look at the database)."""
        event, count = self._waiting.get(turn_id, (asyncio.Event(), 0))
        self._waiting[turn_id] = (event, count + 1)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await event.wait()
        finally:
            event, count = self._waiting[turn_id]
            if count == 1:
                del self._waiting[turn_id]
            else:
                self._waiting[turn_id] = (event, count - 1)
