"""The chain file's [deferral] table: defaults from the primary, and clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from web.deferral_config import DEFAULT_BADGE, DEFAULT_EXPIRE_S, Backend
from web.settings import DEFAULT_CHAIN_FILE, ConfigError, Settings, load_chain_file

TIER = """
[[tiers]]
name = "{name}"
provider = "{provider}"
model = "{model}"
label = "{label}"
api_key_env = "{key}"
"""
SONNET = TIER.format(
    name="sonnet",
    provider="anthropic",
    model="claude-sonnet-4-6",
    label="Sonnet",
    key="ANTHROPIC_API_KEY",
)
GPT = TIER.format(name="gpt", provider="openai", model="gpt-5.5", label="GPT", key="OPENAI_API_KEY")


def chain(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "chain.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_default_chain_queues_on_message_batches_with_the_primarys_model() -> None:
    _, deferral = load_chain_file(DEFAULT_CHAIN_FILE)
    assert deferral is not None
    assert deferral.backend is Backend.ANTHROPIC_BATCH
    assert (deferral.model, deferral.api_key_env) == ("claude-sonnet-4-6", "ANTHROPIC_API_KEY")
    assert (deferral.label, deferral.badge) == ("Sonnet (Message Batches)", "delayed reply")
    assert deferral.expire_s == DEFAULT_EXPIRE_S == 86400


def test_without_the_table_there_is_no_deferral(tmp_path: Path) -> None:
    assert load_chain_file(chain(tmp_path, SONNET))[1] is None


def test_defaults_come_from_the_primary(tmp_path: Path) -> None:
    _, deferral = load_chain_file(
        chain(tmp_path, SONNET + '[deferral]\nbackend = "anthropic_batch"\n')
    )
    assert deferral is not None
    assert deferral.label == "Sonnet (Message Batches)" and deferral.badge == DEFAULT_BADGE
    assert deferral.model == "claude-sonnet-4-6"


def test_the_retry_backend_needs_no_model(tmp_path: Path) -> None:
    text = GPT + '[deferral]\nbackend = "retry"\nexpire_s = 600\n'
    _, deferral = load_chain_file(chain(tmp_path, text))
    assert deferral is not None and deferral.backend is Backend.RETRY
    assert deferral.model is None and deferral.expire_s == 600


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('backend = "carrier pigeon"', "backend must be one of 'anthropic_batch', 'retry'"),
        ('backend = "retry"\nexpire_s = -1', "expire_s must be a positive number of seconds"),
        ('backend = "retry"\nexpire_s = true', "expire_s must be a positive number of seconds"),
        ('backend = "retry"\nmodel = "x"', "model is for the anthropic_batch backend"),
        ('backend = "retry"\nlabel = ""', "label must be a non-empty string"),
        ('backend = "retry"\nspeed = 3', "unknown key(s) speed"),
        ('backend = "retry"\npoll_s = 10\nmax_poll_s = 5', "max_poll_s must be at least poll_s"),
    ],
)
def test_a_bad_table_is_refused_with_what_to_change(
    tmp_path: Path, table: str, message: str
) -> None:
    with pytest.raises(ConfigError, match="deferral") as caught:
        load_chain_file(chain(tmp_path, SONNET + "[deferral]\n" + table + "\n"))
    assert message in str(caught.value)


def test_batches_behind_a_non_anthropic_primary_need_a_model(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="primary tier is a openai model"):
        load_chain_file(chain(tmp_path, GPT + '[deferral]\nbackend = "anthropic_batch"\n'))


def test_an_unknown_table_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown table"):
        load_chain_file(chain(tmp_path, SONNET + "[deferal]\nbackend = 'retry'\n"))


def test_batches_without_their_key_are_off_while_other_keys_are_set(tmp_path: Path) -> None:
    path = chain(
        tmp_path,
        GPT
        + SONNET
        + '[deferral]\nbackend = "anthropic_batch"\nmodel = "claude-sonnet-4-6"\napi_key_env = "ANTHROPIC_API_KEY"\n',
    )
    only_openai = Settings.from_env({"UNDERSTUDY_CHAIN": str(path), "OPENAI_API_KEY": "sk-x"})
    assert only_openai.deferral is None
    both = Settings.from_env(
        {"UNDERSTUDY_CHAIN": str(path), "OPENAI_API_KEY": "sk-x", "ANTHROPIC_API_KEY": "a-x"}
    )
    assert both.deferral is not None
    demo = Settings.from_env({"UNDERSTUDY_CHAIN": str(path)})
    assert demo.deferral is not None  # no key at all: the simulator answers the batches too
