"""The typed events the chain yields; the runner, the live reply and `understudy ask` consume them.

A turn's stream is:  TierStarted, (TextDelta | TierStarted)*, then exactly one of Completed or
Exhausted; or Exhausted alone when no tier could be tried at all (a turn limited to the primary
whose breaker is open: see :mod:`web.chain`). A TierStarted with ``restart=True`` means text already shown must be discarded: the
reply starts again from empty on the new tier.

Attempts are reported one way only: every try ends in one :class:`AttemptRecord`, handed to the
``on_attempt`` callback of ``Chain.run`` the moment it ends (see :mod:`web.chain` for why a
callback and not an event).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from web.providers.base import ErrorKind, TextDelta
from web.settings import TierConfig
from web.status import AttemptOutcome, HedgeRole

__all__ = [
    "AttemptRecord",
    "ChainEvent",
    "Completed",
    "Exhausted",
    "TextDelta",
    "TierInfo",
    "TierStarted",
    "event_to_json",
    "tier_info",
    "tier_infos",
]


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


def tier_info(config: TierConfig, index: int) -> TierInfo:
    """The one place a TierInfo is made from the chain file."""
    return TierInfo(
        name=config.name,
        provider=config.provider,
        model=config.model,
        label=config.label,
        badge=config.badge,
        index=index,
    )


def tier_infos(configs: Sequence[TierConfig]) -> tuple[TierInfo, ...]:
    return tuple(tier_info(config, index) for index, config in enumerate(configs))


@dataclass(frozen=True)
class AttemptRecord:
    tier: TierInfo
    attempt: int
    """1-based attempt number within the turn."""
    started_at: float
    """Unix time."""
    elapsed_s: float
    ttft_s: float | None
    outcome: AttemptOutcome
    error_kind: ErrorKind | None = None
    error_message: str | None = None
    status: int | None = None
    request_id: str | None = None
    retry_after: float | None = None
    after_text: bool = False
    open_since: float | None = None
    """A skipped try: since when (Unix time) the tier's breaker has been open; ``error_kind``
    is then what opened it."""
    hedge: HedgeRole | None = None
    """Its part in a hedge (web.hedge). A try that lost one is "cancelled" with a note saying so;
    a hedge that lost or failed before it won was never shown (no TierStarted)."""


@dataclass(frozen=True)
class TierStarted:
    """A try of a tier has begun. It has not answered yet: it answers once text follows."""

    tier: TierInfo
    attempt: int
    restart: bool = False
    """True when text from an earlier attempt was shown and must be replaced."""
    retry: bool = False
    """True when this is the same tier again after a transient failure."""
    started_at: float = 0.0
    """Unix time the try began (what a wait is measured from)."""
    next: TierInfo | None = None
    """The tier the chain would move to if this try were abandoned now (None: it is the last
    one worth trying); what "Answer with ... now" offers."""


@dataclass(frozen=True)
class Completed:
    tier: TierInfo
    text: str
    input_tokens: int | None
    output_tokens: int | None
    ttft_s: float | None
    """From the start of the turn to the first token of the reply that was kept."""
    total_s: float
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
    total_s: float = 0.0
    final_kind: ErrorKind | None = None


ChainEvent = TierStarted | TextDelta | Completed | Exhausted


def event_to_json(event: ChainEvent | AttemptRecord) -> dict[str, Any]:
    """A JSON-ready dict with a "type" key (used by `understudy ask --json`)."""
    data = asdict(event)
    if isinstance(event, AttemptRecord):
        data["tier"] = event.tier.name
    data["type"] = type(event).__name__
    return data
