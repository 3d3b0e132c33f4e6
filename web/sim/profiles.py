"""Per-model timing and size profiles, and which model ids the simulator knows.

A model is known when it has a profile of its own or is one of the built-in ids; a request for
any other id gets the provider's 404. A known model without a profile of its own uses the default.
Setting the default (model ``"*"``) also applies the same fields to every model's own profile, so
``POST /models {"model": "*", "first_token_s": 0, ...}`` makes every model fast at once.

Every field has an upper bound (web.sim.limits); past it the profile is refused with
:class:`~web.sim.limits.OutOfBounds`, and so is a new model id once there are ``MAX_PROFILES``.
"""

from __future__ import annotations

import math
import threading
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from web.sim.limits import (
    MAX_BATCH_DELAY_S,
    MAX_CONTEXT_WINDOW,
    MAX_FIRST_TOKEN_S,
    MAX_MODEL_CHARS,
    MAX_PROFILES,
    MAX_REPLY_TOKENS,
    MAX_TOKENS_PER_S,
    OutOfBounds,
    shown,
)

ALL_MODELS = "*"


@dataclass(frozen=True)
class ModelProfile:
    first_token_s: float
    tokens_per_s: float
    reply_tokens: int
    context_window: int
    batch_delay_s: float = 3.0
    """How long a Message Batch naming this model stays in_progress (on the registry's clock)."""

    def __post_init__(self) -> None:
        for name in ("first_token_s", "tokens_per_s", "batch_delay_s"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
            ):
                raise ValueError(f"{name} must be a number, got {value!r}")
        for name in ("reply_tokens", "context_window"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be a whole number, got {value!r}")
        if self.first_token_s < 0:
            raise ValueError("first_token_s must be >= 0")
        if self.tokens_per_s <= 0:
            raise ValueError("tokens_per_s must be > 0")
        if self.batch_delay_s < 0:
            raise ValueError("batch_delay_s must be >= 0")
        if self.reply_tokens < 1:
            raise ValueError("reply_tokens must be >= 1")
        if self.context_window < 1:
            raise ValueError("context_window must be >= 1")
        for name, bound in PROFILE_BOUNDS.items():
            if getattr(self, name) > bound:
                raise OutOfBounds(f"{name} must be <= {shown(bound)}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


PROFILE_BOUNDS: dict[str, float] = {
    "first_token_s": MAX_FIRST_TOKEN_S,
    "tokens_per_s": MAX_TOKENS_PER_S,
    "reply_tokens": MAX_REPLY_TOKENS,
    "context_window": MAX_CONTEXT_WINDOW,
    "batch_delay_s": MAX_BATCH_DELAY_S,
}
PROFILE_FIELDS = tuple(f.name for f in fields(ModelProfile))

# Feel real in the demo: sonnet a little slower than haiku.
DEMO_DEFAULT = ModelProfile(
    first_token_s=0.4, tokens_per_s=90.0, reply_tokens=90, context_window=200_000
)
DEMO_PROFILES = {
    "claude-sonnet-4-6": ModelProfile(
        first_token_s=0.55, tokens_per_s=65.0, reply_tokens=110, context_window=200_000
    ),
    "claude-haiku-4-5-20251001": ModelProfile(
        first_token_s=0.3, tokens_per_s=120.0, reply_tokens=70, context_window=200_000
    ),
    "gpt-5.5": ModelProfile(
        first_token_s=0.45, tokens_per_s=95.0, reply_tokens=90, context_window=400_000
    ),
    "gemini-3.5-flash": ModelProfile(
        first_token_s=0.35, tokens_per_s=110.0, reply_tokens=90, context_window=1_048_576
    ),
}
LOCAL_MODELS = frozenset({"llama3.2:3b", "qwen3:8b", "Qwen/Qwen3-8B"})
"""Ids as local OpenAI-compatible servers name their models (Ollama, vLLM), for a tier with a
``base_url`` pointed at the simulator's OpenAI path."""
BUILTIN_MODELS = frozenset(
    {
        *DEMO_PROFILES,
        *LOCAL_MODELS,
        "claude-opus-4-5",
        "claude-sonnet-4-5",
        "gpt-5.5-mini",
        "gpt-4.1",
        "gpt-4o-mini",
        "gemini-3.1-flash-lite",
        "gemini-3.1-pro-preview",
        "gemini-2.5-flash",
    }
)


class Profiles:
    """The profile store shared by the raw server and the control routes."""

    def __init__(
        self,
        profiles: dict[str, ModelProfile] | None = None,
        default: ModelProfile | None = None,
    ) -> None:
        if profiles is None and default is None:
            profiles = dict(DEMO_PROFILES)
        self._own: dict[str, ModelProfile] = dict(profiles or {})
        self._default = default or DEMO_DEFAULT
        self._lock = threading.Lock()

    @property
    def default(self) -> ModelProfile:
        return self._default

    def knows(self, model: str) -> bool:
        return model in self._own or model in BUILTIN_MODELS

    def get(self, model: str) -> ModelProfile:
        return self._own.get(model, self._default)

    def set(self, model: str, **changes: Any) -> ModelProfile:
        """Change some fields of one model's profile (or of all, for "*"); ValueError if invalid."""
        unknown = sorted(set(changes) - set(PROFILE_FIELDS))
        if unknown:
            raise ValueError(
                f"unknown profile field(s) {', '.join(unknown)}; "
                f"allowed: {', '.join(PROFILE_FIELDS)}"
            )
        if not isinstance(model, str) or not model:
            raise ValueError('"model" must be a model id or "*"')
        if len(model) > MAX_MODEL_CHARS:
            raise OutOfBounds(f'"model" must be at most {MAX_MODEL_CHARS} characters')
        with self._lock:
            if model == ALL_MODELS:
                self._default = replace(self._default, **changes)
                self._own = {m: replace(p, **changes) for m, p in self._own.items()}
                return self._default
            if model not in self._own and len(self._own) >= MAX_PROFILES:
                raise OutOfBounds(
                    f"at most {MAX_PROFILES} models can have a profile of their own; "
                    'set the default with "model": "*" instead'
                )
            profile = replace(self.get(model), **changes)
            self._own[model] = profile
            return profile

    def to_json(self) -> dict[str, Any]:
        models = sorted(BUILTIN_MODELS | set(self._own))
        return {
            "default": self._default.to_json(),
            "models": {m: self.get(m).to_json() for m in models},
        }
