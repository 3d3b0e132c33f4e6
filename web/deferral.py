"""Async deferral, the chain's last resort: a turn no tier can answer now is queued, and its reply
lands in the conversation later.

Policy, all of it here:

- A turn is queued instead of failed (``Deferral.accepts``) when the chain was exhausted by
  unavailability: rate limits, overload, 5xx, timeouts, connection errors, broken streams, open
  breakers. Never for a bad request, a content-policy refusal or a conversation too long for the
  context window: they would fail again. Nor when every failure was a configuration error (a
  rejected key, an unknown model), nor, for the Message Batches backend, when the key or model it
  would use was the one rejected.
- The job is written in the transaction that marks the turn "queued" (an outbox,
  :func:`web.db.turnlog.record_outcome`): a crash at any moment loses neither the message nor
  the job. The turn id is the idempotency key end to end: the job's primary key, the batch
  request's ``custom_id``, and the condition of the one write that lands the reply (the turn must
  still be queued), so a result fetched twice, or by two workers, lands once.
- A worker (:mod:`web.deferral_worker`) submits, polls with backoff and lands the reply, or after
  ``expire_s`` fails the turn with words that say what happened. The backends are
  :mod:`web.deferral_backends`: the Message Batches API, or the synchronous chain run again.
- While a turn is queued its conversation takes no new message (it would be answered before the
  queued one, out of order); Cancel withdraws the job, and the batch request when there is one.

The words users read about it are in :mod:`web.wording` (``queued_reason`` and after).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from web.deferral_config import Backend, DeferralConfig
from web.events import AttemptRecord, TierInfo
from web.providers.base import ChatMessage, ChatRequest, ErrorKind
from web.settings import Settings
from web.status import AttemptOutcome

DEFERRAL_TIER = "deferral"
"""The tier name a delayed reply (and each submission and poll attempt) is logged under."""

NEVER_QUEUED = frozenset(
    {ErrorKind.BAD_REQUEST, ErrorKind.CONTENT_POLICY, ErrorKind.CONTEXT_TOO_LONG}
)
"""Failures that would happen again, whenever and wherever the request is sent."""
CONFIG_ERRORS = frozenset({ErrorKind.AUTH, ErrorKind.NOT_FOUND})


@dataclass(frozen=True)
class Deferral:
    config: DeferralConfig
    info: TierInfo
    """How a delayed reply shows: the badge, and "Generated via <label>"."""
    same_key_tiers: frozenset[str]
    """Tiers using the key the backend would use (their rejected key rules the backend out)."""
    max_tokens: int
    """The reply's length limit: the primary tier's ``max_output_tokens``."""

    @classmethod
    def from_settings(cls, settings: Settings) -> Deferral | None:
        config = settings.deferral
        if config is None:
            return None
        info = TierInfo(
            name=DEFERRAL_TIER,
            provider="anthropic" if config.backend is Backend.ANTHROPIC_BATCH else "",
            model=config.model or "",
            label=config.label,
            badge=config.badge,
            index=len(settings.tiers),
        )
        same = frozenset(
            t.name
            for t in settings.tiers
            if config.backend is Backend.ANTHROPIC_BATCH
            and t.provider == "anthropic"
            and t.api_key_env == config.api_key_env
        )
        return cls(config, info, same, settings.tiers[0].max_output_tokens)

    @property
    def backend(self) -> Backend:
        return self.config.backend

    def accepts(self, attempts: Sequence[AttemptRecord]) -> bool:
        """Whether a turn whose tries ended this way is queued rather than failed."""
        failures = [
            r
            for r in attempts
            if r.outcome in (AttemptOutcome.FAILED, AttemptOutcome.SKIPPED) and r.error_kind
        ]
        if not failures:
            return False
        kinds = {r.error_kind for r in failures}
        if kinds & NEVER_QUEUED or kinds <= CONFIG_ERRORS:
            return False
        return not any(
            r.error_kind in CONFIG_ERRORS and r.tier.name in self.same_key_tiers for r in failures
        )


def unavailable_labels(attempts: Sequence[AttemptRecord]) -> list[str]:
    """The tiers that could not answer, once each, in chain order."""
    seen: dict[str, tuple[int, str]] = {}
    for r in attempts:
        if r.outcome is not AttemptOutcome.OK:
            seen.setdefault(r.tier.name, (r.tier.index, r.tier.label))
    return [label for _, label in sorted(seen.values())]


def request_to_json(request: ChatRequest) -> str:
    return json.dumps(
        {
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "system": request.system,
            "max_tokens": request.max_tokens,
        }
    )


def request_from_json(text: str) -> ChatRequest:
    data = json.loads(text)
    return ChatRequest(
        messages=tuple(ChatMessage(role=m["role"], content=m["content"]) for m in data["messages"]),
        system=data.get("system"),
        max_tokens=int(data.get("max_tokens", 1024)),
    )
