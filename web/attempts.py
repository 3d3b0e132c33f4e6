"""One try of one tier, measured while it runs, and the :class:`AttemptRecord` it ends in.

The chain (:mod:`web.chain`) decides what each try means; this module only keeps its clock, its
text so far and its usage, so that every record is built the same way whatever ended the try.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from web.events import AttemptRecord, TierInfo
from web.providers.base import ProviderError, Usage
from web.settings import TierConfig
from web.status import AttemptOutcome


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
        )
