"""Waiting for a live process to get somewhere: bounded from above only, never a fixed sleep."""

from __future__ import annotations

import time
from collections.abc import Callable

WITHIN_S = 60.0
"""An upper bound on each wait (a loaded machine is slow; nothing here needs it to be fast)."""


def wait_until(condition: Callable[[], bool], what: str, within_s: float = WITHIN_S) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within_s:.0f} s waiting for {what}")
        time.sleep(0.05)
