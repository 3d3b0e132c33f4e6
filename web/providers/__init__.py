"""Thin adapters on the official provider SDKs, and the one registry of them.

``PROVIDERS`` maps the chain file's ``provider = "..."`` to a factory. Settings validates names
against it and the tiers are built from it. The factories import their SDK on first use, so
reading settings (e.g. for `understudy turns`) does not load every SDK.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from web.providers.base import Provider
    from web.settings import Timeouts

ProviderFactory = Callable[[str, "str | None", "Timeouts"], "Provider"]
"""(api_key, base_url, timeouts) -> a provider."""


def _anthropic(api_key: str, base_url: str | None, timeouts: Timeouts) -> Provider:
    from web.providers.anthropic_provider import AnthropicProvider

    return AnthropicProvider(api_key=api_key, base_url=base_url, timeouts=timeouts)


def _openai(api_key: str, base_url: str | None, timeouts: Timeouts) -> Provider:
    from web.providers.openai_provider import OpenAIProvider

    return OpenAIProvider(api_key=api_key, base_url=base_url, timeouts=timeouts)


def _gemini(api_key: str, base_url: str | None, timeouts: Timeouts) -> Provider:
    from web.providers.gemini_provider import GeminiProvider

    return GeminiProvider(api_key=api_key, base_url=base_url, timeouts=timeouts)


PROVIDERS: Mapping[str, ProviderFactory] = {
    "anthropic": _anthropic,
    "openai": _openai,
    "gemini": _gemini,
}
