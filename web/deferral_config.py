"""The chain file's ``[deferral]`` table: what happens when no tier can answer now.

    [deferral]
    backend  = "anthropic_batch"   # or "retry"
    expire_s = 86400               # give up (the turn fails) this long after it was queued
    label    = "Sonnet (Message Batches)"
    badge    = "delayed reply"
    model, api_key_env             # anthropic_batch only; default: the primary tier's
    poll_s, max_poll_s             # the first wait before a worker looks again, and its cap

``anthropic_batch`` sends the request to Anthropic's Message Batches API (half the price; batches
usually still complete while the synchronous API is overloaded); ``retry`` runs the synchronous
chain again later, with jittered backoff. Without the table a turn no tier could answer fails,
as before. The policy that uses it is :mod:`web.deferral`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

DEFAULT_EXPIRE_S = 24 * 3600.0
DEFAULT_BADGE = "delayed reply"


class ConfigProblem(ValueError):
    """A [deferral] table that cannot be used; the message says what to change."""


class Backend(StrEnum):
    ANTHROPIC_BATCH = "anthropic_batch"
    RETRY = "retry"


@dataclass(frozen=True)
class DeferralConfig:
    backend: Backend
    label: str
    """Who a delayed reply is "Generated via" ("Sonnet (Message Batches)")."""
    badge: str = DEFAULT_BADGE
    expire_s: float = DEFAULT_EXPIRE_S
    model: str | None = None
    """anthropic_batch: the model asked (the primary's when the chain file does not say)."""
    api_key_env: str | None = None
    poll_s: float = 2.0
    """How long a worker waits before it first looks at a submitted job again; it doubles."""
    max_poll_s: float = 60.0


_KEYS = {"backend", "expire_s", "label", "badge", "model", "api_key_env", "poll_s", "max_poll_s"}


def parse_deferral(
    raw: Any,
    *,
    primary: tuple[str, str, str, str],
    where: str,
) -> DeferralConfig:
    """``primary``: the first tier's (provider, model, label, api_key_env)."""
    if not isinstance(raw, dict):
        raise ConfigProblem(f'{where}: [deferral] must be a table, e.g. backend = "retry".')
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise ConfigProblem(
            f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_KEYS))}."
        )
    try:
        backend = Backend(str(raw.get("backend")))
    except ValueError:
        raise ConfigProblem(
            f"{where}: backend must be one of {', '.join(repr(b.value) for b in Backend)}."
        ) from None
    for key in ("label", "badge", "model", "api_key_env"):
        if key in raw and (not isinstance(raw[key], str) or not raw[key].strip()):
            raise ConfigProblem(f"{where}: {key} must be a non-empty string.")
    numbers = {}
    for key in ("expire_s", "poll_s", "max_poll_s"):
        value = raw.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise ConfigProblem(f"{where}: {key} must be a positive number of seconds.")
        numbers[key] = float(value)
    provider, primary_model, label, primary_key = primary
    model: str | None
    key_env: str | None
    if backend is Backend.ANTHROPIC_BATCH:
        if "model" not in raw and provider != "anthropic":
            raise ConfigProblem(
                f"{where}: the anthropic_batch backend sends to Anthropic, but the primary tier "
                f"is a {provider} model; set model (and api_key_env) in [deferral], or use "
                'backend = "retry".'
            )
        model = raw.get("model", primary_model)
        key_env = raw.get("api_key_env", primary_key)
        default_label = f"{label} (Message Batches)"
    else:
        for key in ("model", "api_key_env"):
            if key in raw:
                raise ConfigProblem(
                    f"{where}: {key} is for the anthropic_batch backend; the retry backend "
                    "asks the chain's own tiers again."
                )
        model, key_env = None, None
        default_label = "a later retry"
    config = DeferralConfig(
        backend=backend,
        label=raw.get("label", default_label),
        badge=raw.get("badge", DEFAULT_BADGE),
        model=model,
        api_key_env=key_env,
        **numbers,
    )
    if config.max_poll_s < config.poll_s:
        raise ConfigProblem(f"{where}: max_poll_s must be at least poll_s.")
    return config
