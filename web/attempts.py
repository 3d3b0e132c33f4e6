"""One try of one tier, measured while it runs, and the :class:`AttemptRecord` it ends in.

The chain (:mod:`web.chain`) decides what each try means; this module only keeps its clock, its
text so far and its usage, so that every record is built the same way whatever ended the try.
:class:`Try` is a started try with what it is read through: its stream, its timer, its limits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from web.events import AttemptRecord, TierInfo
from web.providers.base import ProviderError, StreamItem, Usage
from web.settings import TierConfig
from web.status import AttemptOutcome, HedgeRole
from web.tiers import Tier
from web.watchdog import Watchdog


@dataclass(eq=False)
class RunningAttempt:
    tier: TierInfo
    config: TierConfig
    number: int
    loop: asyncio.AbstractEventLoop
    start: float = 0.0
    """Loop time."""
    started_at: float = 0.0
    """Unix time."""
    parts: list[str] = field(default_factory=list)
    first_at: float | None = None
    usage: Usage | None = None
    error: ProviderError | None = None
    hedge: HedgeRole | None = None

    def __post_init__(self) -> None:
        self.start = self.loop.time()
        self.started_at = time.time()

    @property
    def after_text(self) -> bool:
        return bool(self.parts)

    def text(self, chunk: str) -> None:
        if self.first_at is None:
            self.first_at = self.loop.time()
        self.parts.append(chunk)

    def record(self, outcome: AttemptOutcome, note: str | None = None) -> AttemptRecord:
        """``note``: what happened, for an outcome that is not an error (an abandoned try)."""
        error = self.error if outcome is AttemptOutcome.FAILED else None
        usage = self.usage
        return AttemptRecord(
            tier=self.tier,
            attempt=self.number,
            started_at=self.started_at,
            elapsed_s=self.loop.time() - self.start,
            ttft_s=None if self.first_at is None else self.first_at - self.start,
            outcome=outcome,
            error_kind=error.kind if error else None,
            error_message=error.message if error else note,
            status=error.status if error else None,
            request_id=error.request_id if error else usage.request_id if usage else None,
            retry_after=error.retry_after if error else None,
            after_text=self.after_text and outcome is not AttemptOutcome.OK,
            hedge=self.hedge,
        )


@dataclass(eq=False)
class Try:
    """A started try: its attempt, the provider stream it reads (created, so nothing is sent
    until it is first read), the timer of its waits, and where the chain stands with it."""

    tier: Tier
    index: int
    """The tier's place in the chain."""
    attempt: RunningAttempt
    stream: AsyncIterator[StreamItem]
    watchdog: Watchdog
    hard: float
    """Loop time past which it may not run: the tier's total limit or the turn's deadline."""
    probe: bool
    """It is its tier's half-open probe (the breaker must hear how it ended)."""
    next_tier: TierInfo | None
    """The tier the chain would ask if it were abandoned (what "Answer with ... now" offers)."""

    @property
    def number(self) -> int:
        return self.attempt.number

    async def close(self) -> None:
        """Close its HTTP request (if it is still open) and its timer."""
        self.watchdog.close()
        aclose = getattr(self.stream, "aclose", None)
        if aclose is not None:
            await aclose()
