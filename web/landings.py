"""Telling the pages of queued turns that their reply landed (or the turn otherwise ended).

A worker in this process notifies at once. With several processes (UNDERSTUDY_REDIS_URL) the
notice is also sent on the bus (web.bus), and every process wakes its own waiting pages
(``heard``). Without Redis, a worker in another process (`understudy worker`, a second server)
is seen by the stream's poll of the turn's row (web.routes.stream), within a few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

LANDED = "landed"
"""The bus message (web.bus) that a queued turn's reply landed, or the turn otherwise ended."""


class Landings:
    def __init__(self) -> None:
        self._waiting: dict[str, tuple[asyncio.Event, int]] = {}
        """turn id -> (its event, how many streams wait on it)."""
        self.relay: Callable[[str], None] | None = None
        """Tells the other processes (the bus), when there are several."""

    def __len__(self) -> int:
        return len(self._waiting)

    def notify(self, turn_id: str) -> None:
        self.heard(turn_id)
        if self.relay is not None:
            self.relay(turn_id)

    def heard(self, turn_id: str) -> None:
        """Wake this process's pages waiting for ``turn_id`` (a notice from anywhere)."""
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
