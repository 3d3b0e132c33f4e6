"""The chain's tiers as built from settings: each tier's config, how it is shown, its provider.

This is the wiring, not the policy (that is :mod:`web.chain`): which provider class serves a tier
(the registry in :mod:`web.providers`), and where it is pointed: at the provider (or the tier's
``base_url``) with its key, or, with ``UNDERSTUDY_SIM_URL``, at the simulator with a placeholder.
"""

from __future__ import annotations

from dataclasses import dataclass

from web.events import TierInfo, tier_info
from web.providers import PROVIDERS
from web.providers.base import Provider
from web.settings import ConfigError, Settings, TierConfig
from web.sim import SIM_PLACEHOLDER_KEY, sim_base_url


@dataclass(frozen=True)
class Tier:
    config: TierConfig
    info: TierInfo
    provider: Provider

    @classmethod
    def build(cls, config: TierConfig, index: int, provider: Provider) -> Tier:
        return cls(config=config, info=tier_info(config, index), provider=provider)


def build_tiers(settings: Settings) -> tuple[Tier, ...]:
    """The running tiers (``settings.tiers``: Settings left out those without a key) at the
    simulator when ``sim_url`` is set, else at their provider with their key. A running tier
    without its key (Settings made by hand) is a ConfigError that says which variable to set."""
    if not settings.sim_url:
        for config in settings.tiers:
            if settings.key_for(config) is None:
                raise ConfigError(
                    f"{config.api_key_env} is not set; tier {config.name!r} ({config.label}) "
                    f"needs it. Set {config.api_key_env}, or set UNDERSTUDY_SIM_URL to use "
                    "the simulated upstream."
                )
    tiers = []
    for index, config in enumerate(settings.tiers):
        key = SIM_PLACEHOLDER_KEY if settings.sim_url else settings.key_for(config)
        provider = provider_with_key(settings, config, key or SIM_PLACEHOLDER_KEY)
        tiers.append(Tier.build(config, index, provider))
    return tuple(tiers)


def provider_with_key(settings: Settings, config: TierConfig, key: str) -> Provider:
    """The tier's provider, pointed where its tier is, sending ``key`` (a drill revokes keys)."""
    base_url = (
        sim_base_url(settings.sim_url, config.provider) if settings.sim_url else config.base_url
    )
    return PROVIDERS[config.provider](key, base_url, config.timeouts)
