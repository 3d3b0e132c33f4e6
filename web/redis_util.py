"""Small pieces shared by the modules that talk to Redis (web.bus, web.live_redis, web.breaker_store)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class RateLimitedWarning:
    """Logs a warning at most once every ``every_s`` seconds.

    Redis being down makes every write or read fail, many times a second; one line a minute says
    so without flooding the log.
    """

    def __init__(
        self,
        log: logging.Logger,
        *,
        every_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self._every_s = every_s
        self._clock = clock
        self._warned_at: float | None = None
        """When the last warning was logged; None: never (the first one always is, even when the
        clock reads less than ``every_s``, as a monotonic clock does just after the boot)."""

    def __call__(self, message: str) -> None:
        now = self._clock()
        if self._warned_at is None or now - self._warned_at > self._every_s:
            self._warned_at = now
            self._log.warning(message, stacklevel=2)


def text(value: bytes | str) -> str:
    """What Redis returned, as text (a client made without ``decode_responses`` returns bytes)."""
    return value.decode() if isinstance(value, bytes) else value
