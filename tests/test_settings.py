from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from web.settings import (
    DEFAULT_CHAIN_FILE,
    DEFAULT_MAX_OUTPUT_TOKENS,
    ConfigError,
    Settings,
    TierConfig,
    load_chain,
    split_by_keys,
)

TIER = """
[[tiers]]
name = "{name}"
provider = "{provider}"
model = "m"
label = "M"
api_key_env = "{key}"
"""


def chain_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "chain.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_default_chain_is_sonnet_haiku_openai_gemini_with_the_badges() -> None:
    tiers = load_chain(DEFAULT_CHAIN_FILE)
    assert [(t.name, t.provider, t.model, t.badge) for t in tiers] == [
        ("sonnet", "anthropic", "claude-sonnet-4-6", ""),
        ("haiku", "anthropic", "claude-haiku-4-5-20251001", "fast mode (smaller model)"),
        ("openai", "openai", "gpt-5.5", "fallback provider"),
        ("gemini", "gemini", "gemini-3.5-flash", "fallback provider"),
    ]
    assert [(t.label, t.api_key_env) for t in tiers][3] == ("Gemini", "GEMINI_API_KEY")
    assert all(t.timeouts.first_token_s < t.timeouts.total_s for t in tiers)
    assert [t.max_output_tokens for t in tiers] == [8192, 8192, 8192, 8192]


def test_max_output_tokens_is_optional_and_read_when_set(tmp_path: Path) -> None:
    text = TIER.format(name="a", provider="openai", key="K") + "max_output_tokens = 300\n"
    text += TIER.format(name="b", provider="anthropic", key="K")
    tiers = load_chain(chain_file(tmp_path, text))
    assert [t.max_output_tokens for t in tiers] == [300, DEFAULT_MAX_OUTPUT_TOKENS]


def test_hedge_after_s_is_off_unless_set(tmp_path: Path) -> None:
    text = TIER.format(name="a", provider="anthropic", key="K") + "hedge_after_s = 4\n"
    text += TIER.format(name="b", provider="openai", key="K")
    tiers = load_chain(chain_file(tmp_path, text))
    assert [t.hedge_after_s for t in tiers] == [4.0, None]
    assert all(t.hedge_after_s is None for t in load_chain(DEFAULT_CHAIN_FILE))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("hedge_after_s = 0", r"tier 1 \(line 2\): hedge_after_s must be a positive number"),
        ('hedge_after_s = "4s"', r"hedge_after_s must be a positive number of seconds, e\.g\. 4"),
        ("hedge_after_s = nan", r"hedge_after_s must be a positive number"),
        ("hedge_after_s = true", r"hedge_after_s must be a positive number"),
        (
            "hedge_after_s = 25.0\ntimeouts = { first_token_s = 20.0 }",
            r"hedge_after_s \(25 s\) must be shorter than timeouts\.first_token_s \(20 s\)",
        ),
    ],
)
def test_a_bad_hedge_after_s_says_how_to_fix_it(tmp_path: Path, line: str, message: str) -> None:
    text = TIER.format(name="a", provider="anthropic", key="K") + line + "\n"
    text += TIER.format(name="b", provider="openai", key="K")
    with pytest.raises(ConfigError, match=message):
        load_chain(chain_file(tmp_path, text))


def test_the_last_tier_has_nothing_to_hedge_to(tmp_path: Path) -> None:
    text = TIER.format(name="a", provider="anthropic", key="K")
    text += TIER.format(name="b", provider="openai", key="K") + "hedge_after_s = 4.0\n"
    with pytest.raises(ConfigError, match=r"tier 2 \(line 9\): hedge_after_s is set on the last"):
        load_chain(chain_file(tmp_path, text))


def test_a_toml_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    path = chain_file(tmp_path, '[[tiers]]\nname = "a"\nprovider = anthropic\n')
    with pytest.raises(ConfigError, match=r"chain\.toml.*line 3.*Fix the TOML syntax"):
        load_chain(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"no tiers"),
        (
            TIER.format(name="a", provider="bard", key="K"),
            r"tier 1 \(line 2\).*'bard'.*anthropic, openai, gemini",
        ),
        (
            TIER.format(name="a", provider="openai", key="K") + 'colour = "red"\n',
            r"unknown key\(s\) colour",
        ),
        (
            '[[tiers]]\nname = "a"\nprovider = "openai"\n',
            r"missing or empty model, label, api_key_env",
        ),
        (
            TIER.format(name="a", provider="openai", key="K")
            + TIER.format(name="a", provider="openai", key="K"),
            r"tier 2 \(line 9\).*duplicate tier name 'a'",
        ),
        (
            TIER.format(name="a", provider="openai", key="K")
            + "timeouts = { first_token_s = -1 }\n",
            r"timeouts\.first_token_s must be a positive number",
        ),
        (
            TIER.format(name="a", provider="openai", key="K") + "context_window = 0\n",
            r"context_window must be a positive whole number",
        ),
        (
            TIER.format(name="a", provider="openai", key="K") + "max_output_tokens = 0\n",
            r"max_output_tokens must be a positive whole number",
        ),
        (
            TIER.format(name="a", provider="openai", key="K") + 'max_output_tokens = "lots"\n',
            r"max_output_tokens must be a positive whole number",
        ),
    ],
)
def test_a_broken_chain_file_says_where_and_how_to_fix_it(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_chain(chain_file(tmp_path, text))


def test_a_missing_chain_file_says_how_to_fix_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read chain file .*Set UNDERSTUDY_CHAIN"):
        Settings.from_env({"UNDERSTUDY_CHAIN": str(tmp_path / "nope.toml")})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("UNDERSTUDY_MAX_MESSAGE_CHARS", "lots"),
        ("UNDERSTUDY_TURN_DEADLINE_S", "-3"),
        ("UNDERSTUDY_NEW_CHATS_PER_MINUTE", "0"),
    ],
)
def test_bad_numbers_in_the_environment_are_refused(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


def test_environment_values_reach_the_settings(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "UNDERSTUDY_DATA_DIR": str(tmp_path),
            "UNDERSTUDY_MAX_MESSAGE_CHARS": "500",
            "UNDERSTUDY_TURN_DEADLINE_S": "7.5",
            "UNDERSTUDY_NEW_CHATS_PER_MINUTE": "5",
            "ANTHROPIC_API_KEY": "sk-ant-x",
            "UNRELATED_KEY": "nope",
        }
    )
    assert settings.data_dir == tmp_path.resolve()
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path.resolve() / 'understudy.db'}"
    assert (settings.max_message_chars, settings.turn_deadline_s) == (500, 7.5)
    assert settings.new_chats_per_minute == 5
    assert dict(settings.api_keys) == {"ANTHROPIC_API_KEY": "sk-ant-x"}


def names(tiers: tuple[TierConfig, ...]) -> list[str]:
    return [t.name for t in tiers]


ALL = ["sonnet", "haiku", "openai", "gemini"]


def test_no_key_at_all_is_demo_mode_with_every_tier() -> None:
    settings = Settings.from_env({})
    assert (names(settings.tiers), settings.left_out, dict(settings.api_keys)) == (ALL, (), {})


def test_every_key_runs_every_tier() -> None:
    env = {"ANTHROPIC_API_KEY": "a", "OPENAI_API_KEY": "o", "GEMINI_API_KEY": "g"}
    settings = Settings.from_env(env)
    assert (names(settings.tiers), settings.left_out) == (ALL, ())


@pytest.mark.parametrize(
    ("keys", "running", "left_out"),
    [
        (["ANTHROPIC_API_KEY"], ["sonnet", "haiku"], ["openai", "gemini"]),
        (["OPENAI_API_KEY"], ["openai"], ["sonnet", "haiku", "gemini"]),
        (["GEMINI_API_KEY", "OPENAI_API_KEY"], ["openai", "gemini"], ["sonnet", "haiku"]),
    ],
)
def test_some_keys_run_only_their_tiers_and_leave_the_others_out(
    keys: list[str], running: list[str], left_out: list[str]
) -> None:
    settings = Settings.from_env(dict.fromkeys(keys, "sk-x"))
    assert names(settings.tiers) == running
    assert names(settings.left_out) == left_out
    assert settings.sim_url is None  # the left-out tiers do not go to a simulator


def test_a_blank_key_is_not_set() -> None:
    settings = Settings.from_env({"ANTHROPIC_API_KEY": "a", "OPENAI_API_KEY": "  "})
    assert "OPENAI_API_KEY" not in settings.api_keys
    assert names(settings.left_out) == ["openai", "gemini"]


def test_a_simulator_url_runs_every_tier_whatever_keys_are_set() -> None:
    settings = Settings.from_env({"ANTHROPIC_API_KEY": "a", "UNDERSTUDY_SIM_URL": "http://x"})
    assert (names(settings.tiers), settings.left_out) == (ALL, ())


def test_a_chain_with_no_tier_left_is_an_error_that_says_what_to_set(tmp_path: Path) -> None:
    chain = load_chain(chain_file(tmp_path, TIER.format(name="a", provider="openai", key="K")))
    with pytest.raises(ConfigError, match=r"no tier can run, none of its keys is set \(K\)"):
        split_by_keys(chain, {"OTHER": "x"}, sim_url=None, chain_file=tmp_path / "chain.toml")


def test_serve_refuses_a_broken_chain_file_before_starting(tmp_path: Path) -> None:
    path = chain_file(tmp_path, TIER.format(name="a", provider="bard", key="K"))
    done = subprocess.run(
        [sys.executable, "-m", "web.cli", "serve", "--port", "0"],
        env={"UNDERSTUDY_CHAIN": str(path), "UNDERSTUDY_DATA_DIR": str(tmp_path), "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "configuration error" in done.stderr and "'bard' is not supported" in done.stderr
    assert not (tmp_path / "understudy.db").exists()
