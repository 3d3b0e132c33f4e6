"""The recovery check, after a drill has ended (its end call removed the fault): messages as any
user sends them, until the primary answers one, within a bound.

Its first words settle it: who is writing, and without a badge. A drill of its own turns leaves
nothing to recover from; an instance-wide one may have opened the primary's breaker, and the
bound (``--recovery-timeout``) is there to cover its open time. The messages carry the ended
drill's header: the server applies no fault to them (the drill is over) but flags them as the
drill's for a while after its end, so they stay out of the users' figures (web.drills).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from web.settings import TierConfig
from web.status import ReplyState

from .user_path import Observation, UserPath

RECOVERY_POLL_S = 2.0
RECOVERY_PROMPT = "Recovery check after a drill: answer in one short sentence."


@dataclass(frozen=True)
class Recovery:
    """After the fault was removed: did the primary answer again, and how soon."""

    passed: bool
    bound_s: float
    tier: str
    """The primary, which should answer."""
    after_s: float | None = None
    """From the end of the drill to the primary's first words (None: not within the bound)."""
    tries: int = 0
    last_seen: str = ""


async def check_recovery(
    url: str,
    primary: TierConfig,
    bound_s: float,
    turn_timeout_s: float,
    say: Callable[[str], None],
    headers: Mapping[str, str] | None = None,
) -> Recovery:
    """Messages until the primary answers one, for at most ``bound_s``: the fault has been
    removed, and users must get the primary back. ``headers``: the ended drill's."""
    path = UserPath(
        url,
        headers=headers,
        turn_timeout_s=turn_timeout_s,
        queue_timeout_s=0.0,
        first_words_only=True,
    )
    start = time.monotonic()
    tries, last = 0, ""
    while True:
        tries += 1
        seen: Observation | None = None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(1.0, bound_s - (time.monotonic() - start))):
                seen = await path.send(0, RECOVERY_PROMPT)
        elapsed = time.monotonic() - start
        final = seen.final if seen is not None else None
        answering = final is not None and final.state in (ReplyState.STREAMING, ReplyState.DONE)
        if answering and final is not None and final.tier == primary.name and not final.badge:
            say(f"  recovery: {primary.label} answered again after {elapsed:.1f} s")
            return Recovery(True, bound_s, primary.name, round(elapsed, 3), tries, "answered")
        if final is not None:
            last = f"{final.tier or 'no tier'} ({final.state.value})"
        else:
            last = (seen.problem or "no reply") if seen is not None else "no reply in time"
        if elapsed + RECOVERY_POLL_S > bound_s:
            say(f"  recovery: {primary.label} did not answer again within {bound_s:g} s")
            return Recovery(False, bound_s, primary.name, None, tries, last)
        await asyncio.sleep(RECOVERY_POLL_S)
