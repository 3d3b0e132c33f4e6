"""Each tier's health as its circuit breaker sees it: the chat's degraded-mode banner and the
admin page's breaker table read it from here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from web.breaker import BreakerState
from web.chain import Chain
from web.events import TierInfo
from web.providers.base import ErrorKind
from web.wording import phrase


@dataclass(frozen=True)
class TierHealth:
    tier: TierInfo
    state: BreakerState
    since: datetime | None
    """When the outage began (None while closed)."""
    until: datetime | None
    """Open until then (then one try probes it)."""
    reason: ErrorKind | None

    @property
    def available(self) -> bool:
        return self.state is BreakerState.CLOSED

    @property
    def reason_text(self) -> str:
        return phrase(self.reason) if self.reason is not None else ""


async def tier_health(chain: Chain) -> list[TierHealth]:
    """In chain order; every tier closed when the chain has no breakers."""
    tiers = [t.info for t in chain.tiers]
    breakers = chain.breakers
    if breakers is None:
        return [TierHealth(t, BreakerState.CLOSED, None, None, None) for t in tiers]
    states = await breakers.states()
    now = breakers.now()
    health = []
    for tier in tiers:
        state = states[tier.name]
        shown = state.shown_state(now)
        closed = shown is BreakerState.CLOSED
        health.append(
            TierHealth(
                tier,
                shown,
                None if closed or state.opened_at is None else _utc(state.opened_at),
                None if closed else _utc(state.until),
                None if closed else state.reason,
            )
        )
    return health


def banner_text(health: list[TierHealth], *, queued: bool = False) -> str | None:
    """The page-level banner while the primary's breaker is open (None otherwise). ``queued``:
    a message no tier can answer is queued (web.deferral) rather than failed."""
    if not health or health[0].available:
        return None
    primary = health[0].tier.label
    answering = next((h.tier for h in health[1:] if h.available), None)
    if answering is None and queued:
        return (
            f"{primary} and its understudies are unavailable right now: messages are queued, "
            "and their replies appear when a model answers."
        )
    if answering is None:
        return f"{primary} and its understudies are unavailable right now: replies may fail."
    mode = answering.badge.split(" (", 1)[0].strip()
    mode_text = f" ({mode})" if mode else ""
    return f"{primary} is unavailable right now: replies come from {answering.label}{mode_text}."


def _utc(when: float) -> datetime:
    return datetime.fromtimestamp(when, UTC)
