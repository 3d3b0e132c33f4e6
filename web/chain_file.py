"""The chain file (TOML): its tiers, their settings, and its [deferral] table, parsed and checked.

Errors name the file, the tier's line and the fix (:class:`ConfigError`). Which of these tiers
run is :mod:`web.settings`'s decision (the keys that are set); the fallback policy that uses them
is :mod:`web.chain`.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from web.breaker import BreakerConfig
from web.deferral_config import ConfigProblem, DeferralConfig, parse_deferral
from web.providers import PROVIDERS
from web.sla_config import SLA, parse_sla

DEFAULT_CHAIN_FILE = Path(__file__).with_name("chain.toml")
DEFAULT_MAX_OUTPUT_TOKENS = 8192
"""A tier's reply length limit when its chain-file entry does not set ``max_output_tokens``."""


class ConfigError(Exception):
    """A setting is missing or wrong; the message says which and how to fix it."""


@dataclass(frozen=True)
class Timeouts:
    connect_s: float = 5.0
    first_token_s: float = 20.0
    idle_s: float = 30.0
    total_s: float = 180.0


@dataclass(frozen=True)
class TierConfig:
    name: str
    provider: str
    model: str
    label: str
    badge: str
    api_key_env: str
    base_url: str | None = None
    context_window: int | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    max_output_tokens: int = DEFAULT_MAX_OUTPUT_TOKENS
    """The most tokens a reply from this tier may have; the chain sends it as the request's limit."""
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    hedge_after_s: float | None = None
    """If a try of this tier has sent no text after this long, the next tier worth asking is
    started beside it and the first to stream text answers (web.hedge). None: never."""
    sla: SLA | None = None
    """What `understudy drill` holds the tier to (web.sla_config); None: not set, defaults."""


_TIER_KEYS = {
    "name",
    "provider",
    "model",
    "label",
    "badge",
    "api_key_env",
    "base_url",
    "context_window",
    "max_output_tokens",
    "timeouts",
    "breaker",
    "hedge_after_s",
    "sla",
}
_REQUIRED = ("name", "provider", "model", "label", "api_key_env")


def load_chain(path: Path) -> tuple[TierConfig, ...]:
    """The tiers of a chain file (see :func:`load_chain_file`)."""
    return load_chain_file(path)[0]


def load_chain_file(path: Path) -> tuple[tuple[TierConfig, ...], DeferralConfig | None]:
    """Parse and validate a chain file: its tiers and its [deferral] table (None without one).
    Errors name the file, the line and the fix."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read chain file {path}: {exc.strerror}. "
            "Set UNDERSTUDY_CHAIN to an existing TOML file, or unset it for the default chain."
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}. Fix the TOML syntax on that line.") from None
    raw_tiers = data.get("tiers")
    if not isinstance(raw_tiers, list) or not raw_tiers:
        raise ConfigError(
            f"{path}: no tiers. Add at least one [[tiers]] table with "
            "name, provider, model, label and api_key_env."
        )
    tiers: list[TierConfig] = []
    names: set[str] = set()
    for index, raw in enumerate(raw_tiers, start=1):
        where = f"{path}: tier {index} (line {_tier_line(text, index)})"
        tiers.append(_parse_tier(raw, where))
        if tiers[-1].hedge_after_s is not None and index == len(raw_tiers):
            raise ConfigError(
                f"{where}: hedge_after_s is set on the last tier, which has no tier after it to "
                "hedge to. Remove it, or add a tier after this one."
            )
        if tiers[-1].name in names:
            raise ConfigError(
                f"{where}: duplicate tier name {tiers[-1].name!r}; names must differ."
            )
        names.add(tiers[-1].name)
    unknown = sorted(set(data) - {"tiers", "deferral"})
    if unknown:
        raise ConfigError(
            f"{path}: unknown table(s) {', '.join(unknown)}; a chain file has [[tiers]] and an "
            "optional [deferral]."
        )
    if "deferral" not in data:
        return tuple(tiers), None
    first = tiers[0]
    try:
        deferral = parse_deferral(
            data["deferral"],
            primary=(first.provider, first.model, first.label, first.api_key_env),
            where=f"{path}: [deferral]",
        )
    except ConfigProblem as exc:
        raise ConfigError(str(exc)) from None
    return tuple(tiers), deferral


def _tier_line(text: str, index: int) -> int:
    seen = 0
    for lineno, line in enumerate(text.splitlines(), start=1):
        if line.strip().startswith("[[tiers]]"):
            seen += 1
            if seen == index:
                return lineno
    return 1


def _parse_tier(raw: Any, where: str) -> TierConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a [[tiers]] table.")
    unknown = sorted(set(raw) - _TIER_KEYS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_TIER_KEYS))}."
        )
    missing = [k for k in _REQUIRED if not isinstance(raw.get(k), str) or not raw.get(k)]
    if missing:
        raise ConfigError(f"{where}: missing or empty {', '.join(missing)}; add them as strings.")
    if raw["provider"] not in PROVIDERS:
        raise ConfigError(
            f"{where}: provider {raw['provider']!r} is not supported; use one of {', '.join(PROVIDERS)}."
        )
    badge = raw.get("badge", "")
    if not isinstance(badge, str):
        raise ConfigError(f'{where}: badge must be a string ("" for the primary).')
    window = raw.get("context_window")
    if window is not None and (not isinstance(window, int) or window <= 0):
        raise ConfigError(f"{where}: context_window must be a positive whole number of tokens.")
    max_output = raw.get("max_output_tokens", DEFAULT_MAX_OUTPUT_TOKENS)
    if isinstance(max_output, bool) or not isinstance(max_output, int) or max_output <= 0:
        raise ConfigError(
            f"{where}: max_output_tokens must be a positive whole number of tokens, "
            f"e.g. {DEFAULT_MAX_OUTPUT_TOKENS}."
        )
    base_url = raw.get("base_url")
    if base_url is not None and not isinstance(base_url, str):
        raise ConfigError(f"{where}: base_url must be a string URL.")
    timeouts = _parse_timeouts(raw.get("timeouts", {}), where)
    return TierConfig(
        name=raw["name"],
        provider=raw["provider"],
        model=raw["model"],
        label=raw["label"],
        badge=badge,
        api_key_env=raw["api_key_env"],
        base_url=base_url,
        context_window=window,
        max_output_tokens=max_output,
        timeouts=timeouts,
        breaker=_parse_breaker(raw.get("breaker", {}), where),
        hedge_after_s=_parse_hedge(raw.get("hedge_after_s"), timeouts, where),
        sla=parse_sla(raw.get("sla"), where=where, error=ConfigError),
    )


def _parse_hedge(raw: Any, timeouts: Timeouts, where: str) -> float | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not raw > 0:
        raise ConfigError(
            f"{where}: hedge_after_s must be a positive number of seconds, e.g. 4.0 "
            "(or left out: no hedging)."
        )
    if raw >= timeouts.first_token_s:
        raise ConfigError(
            f"{where}: hedge_after_s ({raw:g} s) must be shorter than timeouts.first_token_s "
            f"({timeouts.first_token_s:g} s): by then the try has already timed out."
        )
    return float(raw)


_BREAKER_EXAMPLE = (
    "{ window_s = 60, min_calls = 5, failure_rate = 0.5, open_s = 30, max_open_s = 300 }"
)


def _parse_breaker(raw: Any, where: str) -> BreakerConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: breaker must be a table like {_BREAKER_EXAMPLE}.")
    allowed = {"window_s", "min_calls", "failure_rate", "open_s", "max_open_s"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(
            f"{where}: unknown breaker setting(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(allowed))}."
        )
    for key, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ConfigError(f"{where}: breaker.{key} must be a positive number.")
    if "min_calls" in raw and not isinstance(raw["min_calls"], int):
        raise ConfigError(f"{where}: breaker.min_calls must be a whole number of tries.")
    if raw.get("failure_rate", 0.5) > 1:
        raise ConfigError(f"{where}: breaker.failure_rate is a share of tries, from 0 to 1.")
    config = BreakerConfig(**raw)
    if config.max_open_s < config.open_s:
        raise ConfigError(f"{where}: breaker.max_open_s must be at least open_s.")
    return config


def _parse_timeouts(raw: Any, where: str) -> Timeouts:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: timeouts must be a table like {{ first_token_s = 20.0 }}.")
    allowed = set(Timeouts.__dataclass_fields__)
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(
            f"{where}: unknown timeout(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}."
        )
    values: dict[str, float] = {}
    for key, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ConfigError(f"{where}: timeouts.{key} must be a positive number of seconds.")
        values[key] = float(value)
    return Timeouts(**values)
