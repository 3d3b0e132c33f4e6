"""Attempt records and turn outcomes for tests, built with the product's own functions (the
degraded reason is always the sentence the chain would have written)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from web.events import AttemptRecord, Completed, Exhausted, TierInfo
from web.outcome import CutBy, TurnOutcome, answered, cut_short, unanswered
from web.providers.base import ErrorKind
from web.status import AttemptOutcome
from web.wording import degraded_reason, phrase

SONNET = TierInfo("sonnet", "anthropic", "claude-sonnet-4-6", "Sonnet", "", 0)
HAIKU = TierInfo(
    "haiku", "anthropic", "claude-haiku-4-5-20251001", "Haiku", "fast mode (smaller model)", 1
)
OPENAI = TierInfo("openai", "openai", "gpt-5.5", "GPT-5.5", "fallback provider", 2)


def ok(
    tier: TierInfo, attempt: int, *, ttft: float = 0.2, elapsed: float = 1.0, **extra: object
) -> AttemptRecord:
    extra.setdefault("request_id", f"req_{attempt}")
    return AttemptRecord(tier, attempt, time.time(), elapsed, ttft, AttemptOutcome.OK, **extra)  # type: ignore[arg-type]


def failed(
    tier: TierInfo,
    attempt: int,
    kind: ErrorKind,
    status: int | None,
    *,
    elapsed: float = 0.05,
    **extra: object,
) -> AttemptRecord:
    return AttemptRecord(
        tier,
        attempt,
        time.time(),
        elapsed,
        None,
        AttemptOutcome.FAILED,
        kind,
        phrase(kind),
        status,
        **extra,
    )  # type: ignore[arg-type]


def cancelled(
    tier: TierInfo, attempt: int, *, elapsed: float = 0.2, ttft: float | None = 0.1
) -> AttemptRecord:
    return AttemptRecord(tier, attempt, time.time(), elapsed, ttft, AttemptOutcome.CANCELLED)


def answer(
    tier: TierInfo,
    text: str,
    attempts: Sequence[AttemptRecord],
    *,
    ttft: float = 0.1,
    total: float = 0.5,
    tokens: tuple[int | None, int | None] = (3, 4),
    hit_length_limit: bool = False,
) -> TurnOutcome:
    completed = Completed(
        tier,
        text,
        tokens[0],
        tokens[1],
        ttft,
        total,
        degraded_reason(tier, attempts),
        hit_length_limit,
    )
    return answered(completed, attempts)


def no_answer(
    message: str, attempts: Sequence[AttemptRecord], *, total: float = 2.0
) -> TurnOutcome:
    return unanswered(Exhausted(message, total), attempts, started_at=time.time())


def stopped(
    text: str, tier: TierInfo | None, attempts: Sequence[AttemptRecord], *, total: float = 0.9
) -> TurnOutcome:
    return cut_short(CutBy.STOP, text, tier, attempts, started_at=time.time(), total_s=total)


def interrupted(
    text: str, tier: TierInfo | None, attempts: Sequence[AttemptRecord], *, total: float = 0.5
) -> TurnOutcome:
    return cut_short(CutBy.SHUTDOWN, text, tier, attempts, started_at=time.time(), total_s=total)
