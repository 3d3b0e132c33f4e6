"""Settings: the only module that reads ``os.environ``.

Everything configurable comes from environment variables plus the chain file (TOML, parsed by
:mod:`web.chain_file`, whose names are re-exported here). Missing or unsafe settings fail at
start with a :class:`ConfigError` whose message says how to fix them.

Which tiers run is decided here, once (:func:`split_by_keys`): with no API key at all every tier
answers from the simulated upstream (demo mode), and with ``UNDERSTUDY_SIM_URL`` every tier answers
from that simulator; otherwise only the tiers whose key is set run, and the others are left out
of the chain (``Settings.left_out``, said at start and on the admin page). A tier without its
key never falls back to a simulator: real providers and the simulator are never mixed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from web.chain_file import DEFAULT_CHAIN_FILE as DEFAULT_CHAIN_FILE
from web.chain_file import DEFAULT_MAX_OUTPUT_TOKENS as DEFAULT_MAX_OUTPUT_TOKENS
from web.chain_file import ConfigError as ConfigError
from web.chain_file import TierConfig as TierConfig
from web.chain_file import Timeouts as Timeouts
from web.chain_file import load_chain as load_chain
from web.chain_file import load_chain_file as load_chain_file
from web.deferral_config import DeferralConfig


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
    """UNDERSTUDY_REDIS_URL: share live state between processes: live replies (web.live_redis),
    commands to the process running a turn (Stop, "Answer now"), landings and the breakers."""
    redis_prefix: str = "understudy:"
    """UNDERSTUDY_REDIS_PREFIX: every Redis key and channel starts with it (two deployments, or
    two test runs, can share one Redis)."""
    lease_s: float = 15.0
    """UNDERSTUDY_LEASE_S: a process's heartbeat lease (web.processes). A process silent for
    this long is dead, and a survivor interrupts its live turns."""
    sqlite_inline: bool = True
    """UNDERSTUDY_SQLITE_INLINE (default on; 0 turns it off): SQLite calls run on the event loop's
    thread, not one thread hop each through aiosqlite (web.db.inline_sqlite)."""
    answer_now_after_s: float = 4.0
    """UNDERSTUDY_ANSWER_NOW_AFTER_S: how long a reply waits for a first token before the page
    offers "Answer with <next tier> now"."""
    data_dir_set: bool = False
    """UNDERSTUDY_DATA_DIR was set (`understudy drill` keeps its in-process app's data there)."""
    deferral: DeferralConfig | None = None
    """The chain file's [deferral] table: queue a turn no tier can answer now (web.deferral).
    None without the table, or when its backend's key is not set while real keys are."""
    metrics_token: str | None = None
    """UNDERSTUDY_METRICS_TOKEN: /metrics asks every client for it (web.metrics_access)."""
    metrics_dir: Path | None = None
    """PROMETHEUS_MULTIPROC_DIR: the processes of one app write their metrics there, and /metrics
    sums them (web.metrics_shared). prometheus_client reads the variable too, at import: it must
    be set before the process starts (`understudy serve --workers N` sets it for its workers)."""

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
            redis_prefix=env.get("UNDERSTUDY_REDIS_PREFIX") or "understudy:",
            lease_s=_float(env, "UNDERSTUDY_LEASE_S", 15.0),
            sqlite_inline=env.get("UNDERSTUDY_SQLITE_INLINE", "1").strip().lower()
            not in ("0", "false", "no", "off"),
            new_chats_per_minute=_int(env, "UNDERSTUDY_NEW_CHATS_PER_MINUTE", 20),
            deferral=deferral,
            data_dir_set=bool(env.get("UNDERSTUDY_DATA_DIR")),
            metrics_token=env.get("UNDERSTUDY_METRICS_TOKEN", "").strip() or None,
            metrics_dir=_metrics_dir(env),
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


def _metrics_dir(env: Mapping[str, str]) -> Path | None:
    raw = env.get("PROMETHEUS_MULTIPROC_DIR")
    if not raw:
        return None
    path = Path(raw).resolve()
    if not path.is_dir():
        raise ConfigError(
            f"PROMETHEUS_MULTIPROC_DIR={raw!r} is not a directory. Create it, empty, before the "
            "app's processes start (and empty it between runs), or unset it to serve one "
            "process's metrics."
        )
    return path


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
