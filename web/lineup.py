"""The chain's line-up: which tiers run and which are left out for want of a key, in the words
the start-up log, the `serve` banner, `understudy ask` and the admin page all use.

Settings decides (``Settings.tiers`` run, ``Settings.left_out`` do not, see
:func:`web.settings.split_by_keys`); this module only says it, loudly and the same way
everywhere, with the variable that would bring each left-out tier back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from web.deferral_config import DeferralConfig
from web.settings import Settings, TierConfig
from web.wording import waited


@dataclass(frozen=True)
class LineUp:
    running: tuple[TierConfig, ...]
    left_out: tuple[TierConfig, ...]
    simulated: bool
    """Every running tier answers from a simulator (demo mode or UNDERSTUDY_SIM_URL)."""
    deferral: DeferralConfig | None = None

    @classmethod
    def of(cls, settings: Settings) -> LineUp:
        return cls(
            settings.tiers,
            settings.left_out,
            simulated=settings.sim_url is not None,
            deferral=settings.deferral,
        )

    def chain_line(self) -> str:
        tiers = " -> ".join(f"{t.name} ({t.label})" for t in self.running)
        if self.deferral is not None:
            tiers += f" -> queued ({self.deferral_words})"
        return f"Chain: {tiers}{' (simulated upstream)' if self.simulated else ''}"

    @property
    def deferral_words(self) -> str:
        """ "Sonnet (Message Batches), anthropic_batch, gives up after 24 h"."""
        config = self.deferral
        if config is None:
            return "none: a turn no tier can answer fails"
        return f"{config.label}, {config.backend.value}, gives up after {waited(config.expire_s)}"

    def left_out_line(self) -> str | None:
        if not self.left_out:
            return None
        tiers = "; ".join(f"{t.name} ({t.label}): set {t.api_key_env}" for t in self.left_out)
        return f"Left out, no API key: {tiers}"

    def log(self, logger: logging.Logger) -> None:
        logger.info("%s", self.chain_line())
        for tier in self.left_out:
            logger.warning(
                "tier %s (%s) is left out of the chain: %s is not set (set it to enable the tier)",
                tier.name,
                tier.label,
                tier.api_key_env,
            )
