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
    load_chain,
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


def test_the_default_chain_is_sonnet_haiku_openai_with_the_badges() -> None:
    tiers = load_chain(DEFAULT_CHAIN_FILE)
    assert [(t.name, t.provider, t.model, t.badge) for t in tiers] == [
        ("sonnet", "anthropic", "claude-sonnet-4-6", ""),
        ("haiku", "anthropic", "claude-haiku-4-5-20251001", "fast mode (smaller model)"),
        ("openai", "openai", "gpt-5.5", "fallback provider"),
    ]
    assert all(t.timeouts.first_token_s < t.timeouts.total_s for t in tiers)
    assert [t.max_output_tokens for t in tiers] == [8192, 8192, 8192]


def test_max_output_tokens_is_optional_and_read_when_set(tmp_path: Path) -> None:
    text = TIER.format(name="a", provider="openai", key="K") + "max_output_tokens = 300\n"
    text += TIER.format(name="b", provider="anthropic", key="K")
    tiers = load_chain(chain_file(tmp_path, text))
    assert [t.max_output_tokens for t in tiers] == [300, DEFAULT_MAX_OUTPUT_TOKENS]


def test_a_toml_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    path = chain_file(tmp_path, '[[tiers]]\nname = "a"\nprovider = anthropic\n')
    with pytest.raises(ConfigError, match=r"chain\.toml.*line 3.*Fix the TOML syntax"):
        load_chain(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"no tiers"),
        (
            TIER.format(name="a", provider="gemini", key="K"),
            r"tier 1 \(line 2\).*'gemini'.*anthropic, openai",
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


def test_keys_are_all_or_none() -> None:
    Settings.from_env({}).check_keys()  # none: the simulator answers
    Settings.from_env({"ANTHROPIC_API_KEY": "a", "OPENAI_API_KEY": "o"}).check_keys()
    Settings.from_env({"ANTHROPIC_API_KEY": "a", "UNDERSTUDY_SIM_URL": "http://x"}).check_keys()
    with pytest.raises(ConfigError, match=r"OPENAI_API_KEY not set, but other API keys are"):
        Settings.from_env({"ANTHROPIC_API_KEY": "a"}).check_keys()


def test_serve_refuses_a_broken_chain_file_before_starting(tmp_path: Path) -> None:
    path = chain_file(tmp_path, TIER.format(name="a", provider="gemini", key="K"))
    done = subprocess.run(
        [sys.executable, "-m", "web.cli", "serve", "--port", "0"],
        env={"UNDERSTUDY_CHAIN": str(path), "UNDERSTUDY_DATA_DIR": str(tmp_path), "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "configuration error" in done.stderr and "'gemini' is not supported" in done.stderr
    assert not (tmp_path / "understudy.db").exists()


def test_serve_refuses_a_partial_set_of_keys(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "web.cli", "serve", "--port", "0"],
        env={"ANTHROPIC_API_KEY": "sk-ant-x", "UNDERSTUDY_DATA_DIR": str(tmp_path), "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "OPENAI_API_KEY not set" in done.stderr
