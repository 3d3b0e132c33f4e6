"""The typed events the chain yields; the SSE route, the turn log and `understudy ask` consume them.

A turn's stream is:  TierStarted, (TextDelta | AttemptFailed | TierStarted)*, then exactly one of
Completed or Exhausted. An AttemptFailed with ``after_text=True`` means text already shown must be
discarded: the next TierStarted has ``restart=True`` and the reply starts again from empty.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from web.providers.base import ErrorKind


@dataclass(frozen=True)
class TierInfo:
    """What a consumer needs to know about a tier to show and log it."""

    name: str
    provider: str
    model: str
    label: str
    badge: str
    index: int
    """0 for the primary."""

    @property
    def is_primary(self) -> bool:
        return self.index == 0


@dataclass(frozen=True)
class AttemptRecord:
    tier: TierInfo
    attempt: int
    """1-based attempt number within the turn."""
    started_at: float
    """Unix time."""
    elapsed_s: float
    ttft_s: float | None
    outcome: str
    """"ok", "failed" or "cancelled"."""
    error_kind: ErrorKind | None = None
    error_message: str | None = None
    status: int | None = None
    request_id: str | None = None
    retry_after: float | None = None
    after_text: bool = False


@dataclass(frozen=True)
class TierStarted:
    tier: TierInfo
    attempt: int
    restart: bool = False
    """True when text from an earlier attempt was shown and must be replaced."""
    retry: bool = False
    """True when this is the same tier again after a transient failure."""


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class AttemptFailed:
    record: AttemptRecord

    @property
    def tier(self) -> TierInfo:
        return self.record.tier


@dataclass(frozen=True)
class Completed:
    tier: TierInfo
    text: str
    input_tokens: int | None
    output_tokens: int | None
    ttft_s: float | None
    """From the start of the turn to the first token of the reply that was kept."""
    total_s: float
    attempts: tuple[AttemptRecord, ...]
    degraded_reason: str | None = None
    """None for the primary; else a plain sentence: which model answered and why."""
    hit_length_limit: bool = False
    """True when the reply reached the tier's ``max_output_tokens`` and was cut there: ``text`` is
    all the model wrote, but not a finished answer."""
    stop_reason: str | None = None
    """The provider's own word for why the reply ended, as it sent it."""

    @property
    def degraded(self) -> bool:
        return not self.tier.is_primary


@dataclass(frozen=True)
class Exhausted:
    """No tier could answer. ``message`` is a plain sentence for the user."""

    message: str
    attempts: tuple[AttemptRecord, ...] = field(default_factory=tuple)
    total_s: float = 0.0
    final_kind: ErrorKind | None = None


ChainEvent = TierStarted | TextDelta | AttemptFailed | Completed | Exhausted


def event_to_json(event: ChainEvent) -> dict[str, Any]:
    """A JSON-ready dict with a "type" key (used by `understudy ask --json`)."""
    data = asdict(event)
    data["type"] = type(event).__name__
    return data
