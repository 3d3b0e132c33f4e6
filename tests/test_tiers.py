"""Chain.from_settings: the simulator when UNDERSTUDY_SIM_URL is set, real keys otherwise, and
with only some keys only the tiers that have theirs."""

from __future__ import annotations

from pathlib import Path

import pytest

from web.chain import Chain
from web.providers.anthropic_provider import AnthropicProvider
from web.providers.gemini_provider import GeminiProvider
from web.providers.openai_provider import OpenAIProvider
from web.settings import ConfigError, Settings
from web.sim import SIM_PLACEHOLDER_KEY

from support.engine import PROMPT, Upstream, run_turn

CHAIN_WITH_BASE_URL = """
[[tiers]]
name = "proxy"
provider = "openai"
model = "gpt-5.5"
label = "Proxy"
api_key_env = "PROXY_KEY"
base_url = "http://127.0.0.1:9/v1"
"""


def settings(env: dict[str, str]) -> Settings:
    return Settings.from_env(env)


async def test_sim_url_points_every_tier_at_the_simulator() -> None:
    chain = Chain.from_settings(settings({"UNDERSTUDY_SIM_URL": "http://127.0.0.1:8100/"}))
    assert [t.info.name for t in chain.tiers] == ["sonnet", "haiku", "openai", "gemini"]
    assert [t.info.index for t in chain.tiers] == [0, 1, 2, 3]
    providers = [t.provider for t in chain.tiers]
    assert [type(p) for p in providers] == [
        AnthropicProvider,
        AnthropicProvider,
        OpenAIProvider,
        GeminiProvider,
    ]
    assert [p.base_url for p in providers] == [  # type: ignore[attr-defined]
        "http://127.0.0.1:8100/anthropic/",
        "http://127.0.0.1:8100/anthropic/",
        "http://127.0.0.1:8100/openai/v1/",
        "http://127.0.0.1:8100/gemini/",
    ]
    assert chain.tiers[0].provider._client.api_key == SIM_PLACEHOLDER_KEY  # type: ignore[attr-defined]
    await chain.aclose()


async def test_real_keys_never_go_to_the_simulator() -> None:
    env = {"UNDERSTUDY_SIM_URL": "http://127.0.0.1:8100", "ANTHROPIC_API_KEY": "sk-ant-real"}
    chain = Chain.from_settings(settings(env))
    keys = {t.provider._client.api_key for t in chain.tiers[:3]}  # type: ignore[attr-defined]
    assert keys == {SIM_PLACEHOLDER_KEY}
    gemini = chain.tiers[3].provider
    assert gemini._client._api_client.api_key == SIM_PLACEHOLDER_KEY  # type: ignore[attr-defined]
    await chain.aclose()


async def test_turn_deadline_comes_from_settings() -> None:
    env = {"UNDERSTUDY_SIM_URL": "http://127.0.0.1:1", "UNDERSTUDY_TURN_DEADLINE_S": "7.5"}
    chain = Chain.from_settings(settings(env))
    assert chain.deadline_s == 7.5
    await chain.aclose()


def test_a_missing_key_names_the_variable() -> None:
    # No key and no simulator URL: only the app (or `ask`) can start the simulator for these.
    with pytest.raises(ConfigError, match=r"ANTHROPIC_API_KEY is not set.*UNDERSTUDY_SIM_URL"):
        Chain.from_settings(settings({}))


async def test_some_keys_build_only_the_tiers_that_have_theirs() -> None:
    chain = Chain.from_settings(settings({"OPENAI_API_KEY": "sk-o", "GEMINI_API_KEY": "g-key"}))
    assert [(t.info.name, t.info.index) for t in chain.tiers] == [("openai", 0), ("gemini", 1)]
    assert chain.tiers[0].info.is_primary  # the first tier that runs is the primary
    assert chain.tiers[0].provider._client.api_key == "sk-o"  # type: ignore[attr-defined]
    gemini = chain.tiers[1].provider
    assert gemini._client._api_client.api_key == "g-key"  # type: ignore[attr-defined]
    assert gemini.base_url == "https://generativelanguage.googleapis.com/"  # type: ignore[attr-defined]
    await chain.aclose()


async def test_real_keys_and_the_tier_base_url(tmp_path: Path) -> None:
    chain_file = tmp_path / "chain.toml"
    chain_file.write_text(CHAIN_WITH_BASE_URL)
    env = {"UNDERSTUDY_CHAIN": str(chain_file), "PROXY_KEY": "sk-proxy"}
    chain = Chain.from_settings(settings(env))
    (tier,) = chain.tiers
    assert tier.provider.base_url == "http://127.0.0.1:9/v1/"  # type: ignore[attr-defined]
    assert tier.provider._client.api_key == "sk-proxy"  # type: ignore[attr-defined]
    await chain.aclose()


async def test_a_chain_from_settings_answers_from_the_simulator(upstream: Upstream) -> None:
    chain = Chain.from_settings(settings({"UNDERSTUDY_SIM_URL": upstream.url}))
    turn = await run_turn(chain, PROMPT)
    await chain.aclose()
    assert turn.completed.tier.name == "sonnet"


def readme_local_tier() -> str:
    """The chain-file example of the README's local-server section, as printed there."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("### A local OpenAI-compatible server") :]
    return section[section.index("```toml\n") + 8 : section.index("```\n", 10)]


async def test_a_local_openai_compatible_server_is_a_tier_with_a_base_url(
    upstream: Upstream, tmp_path: Path
) -> None:
    # The README's example, pointed at the simulator's OpenAI path instead of Ollama's port.
    text = readme_local_tier().replace("http://127.0.0.1:11434/v1", f"{upstream.url}/openai/v1")
    chain_file = tmp_path / "chain.toml"
    chain_file.write_text(text)
    env = {"UNDERSTUDY_CHAIN": str(chain_file), "OLLAMA_API_KEY": "ollama"}
    chain = Chain.from_settings(settings(env))
    (tier,) = chain.tiers
    assert (tier.config.provider, tier.config.model) == ("openai", "llama3.2:3b")
    try:
        turn = await run_turn(chain, PROMPT)
    finally:
        await chain.aclose()
    assert turn.completed.tier.name == "local"
    (logged,) = upstream.sim.log.entries()
    assert (logged.provider, logged.model, logged.status) == ("openai", "llama3.2:3b", 200)
