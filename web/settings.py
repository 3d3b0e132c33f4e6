"""Settings: the only module that reads ``os.environ``.

Everything configurable comes from environment variables plus the chain file (TOML). Missing or
unsafe settings fail at start with a :class:`ConfigError` whose message says how to fix them.

Which tiers run is decided here, once (:func:`split_by_keys`): with no API key at all every tier
answers from the simulated upstream (demo mode), and with ``UNDERSTUDY_SIM_URL`` every tier answers
from that simulator; otherwise only the tiers whose key is set run, and the others are left out
of the chain (``Settings.left_out``, said at start and on the admin page). A tier without its
key never falls back to a simulator: real providers and the simulator are never mixed.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from web.breaker import BreakerConfig
from web.deferral_config import ConfigProblem, DeferralConfig, parse_deferral
from web.providers import PROVIDERS

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


@dataclass(frozen=True)
class Settings:
    tiers: tuple[TierConfig, ...]
    """The tiers that run, in chain order (the first is the primary)."""
    chain_file: Path
    api_keys: Mapping[str, str]
    """api_key_env name -> key, only for the variables the chain names and that are set."""
    data_dir: Path
    database_url: str
    sim_url: str | None
    """UNDERSTUDY_SIM_URL: point every tier at an already running simulator."""
    admin_password: str | None
    secret_key: str | None
    max_message_chars: int = 32_000
    turn_deadline_s: float = 120.0
    expose_sim: bool = False
    """UNDERSTUDY_EXPOSE_SIM=1: /_sim and the outage panel answer every client, not only loopback
    ones (web.sim.access); and /_sim is mounted even when real keys are configured."""
    header_timeout_s: float = 10.0
    """UNDERSTUDY_HEADER_TIMEOUT_S: a request's line and headers must arrive within this."""
    new_chats_per_minute: int = 20
    """How many conversations one browser session may start in a sliding minute."""
    left_out: tuple[TierConfig, ...] = ()
    """Tiers of the chain file that do not run because their key is not set (while others' are)."""
    redis_url: str | None = None
    """UNDERSTUDY_REDIS_URL: share live state between processes (the breakers, for now)."""
    answer_now_after_s: float = 4.0
    """UNDERSTUDY_ANSWER_NOW_AFTER_S: how long a reply waits for a first token before the page
    offers "Answer with <next tier> now"."""
    deferral: DeferralConfig | None = None
    """The chain file's [deferral] table: queue a turn no tier can answer now (web.deferral).
    None without the table, or when its backend's key is not set while real keys are."""
    metrics_token: str | None = None
    """UNDERSTUDY_METRICS_TOKEN: /metrics asks every client for it (web.metrics_access)."""

    def secrets(self) -> tuple[str, ...]:
        """Every secret value configured: what web.redact must scrub wherever it appears."""
        values = (*self.api_keys.values(), self.admin_password, self.secret_key, self.redis_url)
        return tuple(v for v in (*values, self.metrics_token) if v)

    def key_for(self, tier: TierConfig) -> str | None:
        return self.api_keys.get(tier.api_key_env)

    def with_sim(self, sim_url: str) -> Settings:
        return replace(self, sim_url=sim_url)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        chain_file = Path(env.get("UNDERSTUDY_CHAIN") or DEFAULT_CHAIN_FILE)
        chain, deferral = load_chain_file(chain_file)
        data_dir, database_url = _database(env)
        # A variable set to blanks is unset: no provider takes spaces for a key.
        keys = {
            t.api_key_env: env[t.api_key_env] for t in chain if env.get(t.api_key_env, "").strip()
        }
        sim_url = env.get("UNDERSTUDY_SIM_URL") or None
        tiers, left_out = split_by_keys(chain, keys, sim_url=sim_url, chain_file=chain_file)
        if deferral is not None and deferral.api_key_env:
            if deferral.api_key_env not in keys and env.get(deferral.api_key_env, "").strip():
                keys[deferral.api_key_env] = env[deferral.api_key_env]
            if keys and not sim_url and deferral.api_key_env not in keys:
                deferral = None  # real keys, but not the batch API's: said by web.lineup
        return cls(
            tiers=tiers,
            left_out=left_out,
            chain_file=chain_file,
            api_keys=keys,
            data_dir=data_dir,
            database_url=database_url,
            sim_url=sim_url,
            admin_password=env.get("UNDERSTUDY_ADMIN_PASSWORD") or None,
            secret_key=env.get("UNDERSTUDY_SECRET_KEY") or None,
            max_message_chars=_int(env, "UNDERSTUDY_MAX_MESSAGE_CHARS", 32_000),
            turn_deadline_s=_float(env, "UNDERSTUDY_TURN_DEADLINE_S", 120.0),
            expose_sim=env.get("UNDERSTUDY_EXPOSE_SIM", "") in ("1", "true", "yes"),
            header_timeout_s=_float(env, "UNDERSTUDY_HEADER_TIMEOUT_S", 10.0),
            answer_now_after_s=_float(env, "UNDERSTUDY_ANSWER_NOW_AFTER_S", 4.0),
            redis_url=env.get("UNDERSTUDY_REDIS_URL") or None,
            new_chats_per_minute=_int(env, "UNDERSTUDY_NEW_CHATS_PER_MINUTE", 20),
            deferral=deferral,
            metrics_token=env.get("UNDERSTUDY_METRICS_TOKEN", "").strip() or None,
        )


def split_by_keys(
    chain: tuple[TierConfig, ...],
    keys: Mapping[str, str],
    *,
    sim_url: str | None,
    chain_file: Path,
) -> tuple[tuple[TierConfig, ...], tuple[TierConfig, ...]]:
    """(tiers that run, tiers left out). On a simulator (``sim_url``, or no key at all: demo
    mode) every tier runs; with real keys, only those whose key is set."""
    if sim_url or not keys:
        return chain, ()
    running = tuple(t for t in chain if t.api_key_env in keys)
    left_out = tuple(t for t in chain if t.api_key_env not in keys)
    if not running:
        variables = ", ".join(sorted({t.api_key_env for t in chain}))
        raise ConfigError(
            f"{chain_file}: no tier can run, none of its keys is set ({variables}). Set at least "
            "one of them, or unset every API key to run on the simulated upstream."
        )
    return running, left_out


def database_url_from_env(environ: Mapping[str, str] | None = None) -> str:
    """Only the database URL: the log commands (`turns`, `db upgrade`) work whatever the state of
    the chain file."""
    return _database(os.environ if environ is None else environ)[1]


def _database(env: Mapping[str, str]) -> tuple[Path, str]:
    data_dir = Path(env.get("UNDERSTUDY_DATA_DIR") or "data").resolve()
    database_url = env.get("UNDERSTUDY_DATABASE_URL") or (
        f"sqlite+aiosqlite:///{data_dir / 'understudy.db'}"
    )
    return data_dir, database_url


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(
            f"{name}={raw!r} is not a whole number; set it to e.g. {default}"
        ) from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive; set it to e.g. {default}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number; set it to e.g. {default}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive; set it to e.g. {default}")
    return value


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
