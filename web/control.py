"""What a user can do to a running turn besides Stop: "Answer with Haiku now".

The chain (:mod:`web.chain`) registers the try being waited for and what waits for it (the try's
:class:`~web.watchdog.Watchdog`, or the :class:`~web.hedge.Race` of a hedged try); a skip marks
the try abandoned and ends that wait at once. What an abandoned try means is the chain's policy.
"""

from __future__ import annotations

from typing import Protocol

from web.attempts import RunningAttempt
from web.events import TierInfo

__all__ = ["TurnControl", "Waiter"]


class Waiter(Protocol):
    """What waits for a try's text and can be told to stop: its Watchdog, or a hedge's Race."""

    def expire_now(self) -> None: ...


class TurnControl:
    """What a user can do to a running turn besides Stop: not wait any longer for the try in
    progress, before it has sent text, when there is a tier after it."""

    def __init__(self) -> None:
        self._attempt: RunningAttempt | None = None
        self._waiter: Waiter | None = None
        self._next: TierInfo | None = None
        self._abandoned: set[int] = set()

    def skip(self, attempt: int) -> TierInfo | None:
        """Abandon try number ``attempt`` if it is still the one waited for; returns the tier
        that is asked next, or None when there is nothing to skip (it already answered, it is
        over, or it is the last tier)."""
        running, waiter, next_tier = self._attempt, self._waiter, self._next
        if running is None or waiter is None or next_tier is None:
            return None
        if running.number != attempt or running.after_text:
            return None
        self._abandoned.add(attempt)
        waiter.expire_now()
        return next_tier

    def abandoned(self, attempt: int) -> bool:
        return attempt in self._abandoned

    def _begin(self, attempt: RunningAttempt, waiter: Waiter, next_tier: TierInfo | None) -> None:
        self._attempt, self._waiter, self._next = attempt, waiter, next_tier

    def _end(self) -> None:
        self._attempt = self._waiter = self._next = None
