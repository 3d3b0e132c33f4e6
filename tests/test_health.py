"""The degraded-mode banner's words (web.health.banner_text)."""

from __future__ import annotations

from web.breaker import BreakerState
from web.events import TierInfo
from web.health import TierHealth, banner_text

SONNET = TierInfo("sonnet", "anthropic", "s", "Sonnet", "", 0)
HAIKU = TierInfo("haiku", "anthropic", "h", "Haiku", "fast mode (smaller model)", 1)


def health(*available: bool) -> list[TierHealth]:
    return [
        TierHealth(
            tier=tier,
            state=BreakerState.CLOSED if up else BreakerState.OPEN,
            since=None,
            until=None,
            reason=None,
        )
        for tier, up in zip((SONNET, HAIKU), available, strict=True)
    ]


def test_no_banner_while_the_primary_is_available() -> None:
    assert banner_text(health(True, False)) is None


def test_the_understudy_that_answers_is_named() -> None:
    assert banner_text(health(False, True)) == (
        "Sonnet is unavailable right now: replies come from Haiku (fast mode)."
    )


def test_with_every_tier_down_the_banner_says_whether_messages_are_queued() -> None:
    assert banner_text(health(False, False)) == (
        "Sonnet and its understudies are unavailable right now: replies may fail."
    )
    assert banner_text(health(False, False), queued=True) == (
        "Sonnet and its understudies are unavailable right now: messages are queued, and their "
        "replies appear when a model answers."
    )
