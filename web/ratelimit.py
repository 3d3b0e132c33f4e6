"""A sliding-window limit per key (a browser session's owner hash): how many new conversations
one session may start in a minute.

In process, like the admin's logins; several processes would share one through a store. The
clock is injectable so tests step time by hand.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

NEW_CHAT_WINDOW_S = 60.0


class SlidingWindow:
    def __init__(
        self,
        limit: int,
        window_s: float = NEW_CHAT_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self.max_keys = 10_000
        self._hits: dict[str, deque[float]] = {}

    def retry_after(self, key: str) -> float | None:
        """Seconds until ``key`` may act again, or None if it may now."""
        hits = self._hits.get(key)
        if not hits:
            return None
        now = self.clock()
        while hits and hits[0] <= now - self.window_s:
            hits.popleft()
        if len(hits) < self.limit:
            return None
        return hits[0] + self.window_s - now

    def hit(self, key: str) -> None:
        """Count one action of ``key`` now (after :meth:`retry_after` allowed it)."""
        now = self.clock()
        if key not in self._hits and len(self._hits) >= self.max_keys:
            # Many sessions: forget those whose actions have all left the window.
            for stale in [
                k for k, h in self._hits.items() if not h or h[-1] <= now - self.window_s
            ]:
                del self._hits[stale]
        self._hits.setdefault(key, deque()).append(now)
