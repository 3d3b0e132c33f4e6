"""The chain file's per-tier ``sla``: optional, validated with the fix in the message."""

from __future__ import annotations

from pathlib import Path

import pytest

from web.settings import DEFAULT_CHAIN_FILE, ConfigError, load_chain
from web.sla_config import DEFAULT_SLA, SLA

TIER = """
[[tiers]]
name = "{name}"
provider = "anthropic"
model = "claude-sonnet-4-6"
label = "{name}"
api_key_env = "ANTHROPIC_API_KEY"
"""


def chain(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "chain.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_sla_is_read_per_tier_and_absent_unless_set(tmp_path: Path) -> None:
    text = TIER.format(name="a") + "sla = { ttft_p95_s = 2, total_p95_s = 20.5 }\n"
    tiers = load_chain(chain(tmp_path, text + TIER.format(name="b")))
    assert [t.sla for t in tiers] == [SLA(ttft_p95_s=2.0, total_p95_s=20.5), None]
    assert [(t.name, t.sla) for t in load_chain(DEFAULT_CHAIN_FILE)] == [
        ("sonnet", SLA(3.0, 60.0)),
        ("haiku", SLA(2.0, 30.0)),
        ("openai", SLA(3.0, 60.0)),
        ("gemini", SLA(3.0, 60.0)),
    ]


def test_a_partial_sla_keeps_the_default_for_the_rest(tmp_path: Path) -> None:
    text = TIER.format(name="a") + "sla = { ttft_p95_s = 1.5 }\n"
    (tier,) = load_chain(chain(tmp_path, text))
    assert tier.sla == SLA(ttft_p95_s=1.5, total_p95_s=DEFAULT_SLA.total_p95_s)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("sla = 3", r"tier 1 \(line 2\): sla must be a table like \{ ttft_p95_s = 3\.0"),
        ("sla = { ttft = 3 }", r"unknown sla setting\(s\) ttft; allowed: total_p95_s, ttft_p95_s"),
        ("sla = { ttft_p95_s = 0 }", r"sla\.ttft_p95_s must be a positive number of seconds"),
        ("sla = { ttft_p95_s = true }", r"sla\.ttft_p95_s must be a positive number"),
        ("sla = { total_p95_s = inf }", r"sla\.total_p95_s must be a positive number"),
        (
            "sla = { ttft_p95_s = 5, total_p95_s = 4 }",
            r"sla\.total_p95_s \(4 s\) is shorter than sla\.ttft_p95_s \(5 s\)",
        ),
    ],
)
def test_a_bad_sla_stops_start_up_with_the_fix(tmp_path: Path, line: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_chain(chain(tmp_path, TIER.format(name="a") + line + "\n"))
