"""Every fault kind on the primary, for each wire format as the primary: which tier answers (or
which clear error ends the turn), how many requests each model got (the simulator's log and the
AttemptRecords agree), and how long it took."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from web.providers.base import ErrorKind

from support.engine import (
    GEMINI,
    GEMINI_TIER,
    GPT,
    GPT_TIER,
    HAIKU,
    HAIKU_TIER,
    PATIENT,
    SHORT,
    SONNET,
    SONNET_TIER,
    Upstream,
    run_turn,
)

K = ErrorKind

#: primary -> (chain order, the model that answers when the primary moves on)
CHAINS = {
    "anthropic": ((SONNET_TIER, HAIKU_TIER, GPT_TIER), SONNET, HAIKU),
    "openai": ((GPT_TIER, HAIKU_TIER, SONNET_TIER), GPT, HAIKU),
    "gemini": ((GEMINI_TIER, HAIKU_TIER, SONNET_TIER), GEMINI, HAIKU),
}
#: Gemini has no 529 and calls its 503 UNAVAILABLE, "the model is overloaded".
GEMINI_OVERLOADED = {"gemini": {"fault": {"kind": "status", "status": 503}}}


@dataclass(frozen=True)
class Case:
    fault: dict[str, Any]
    primary_attempts: int
    kind: ErrorKind | None
    """Kind of every failed attempt on the primary (None: the primary answers)."""
    answers: str | None = "second"
    """"primary", "second", or None when the turn must end with a clear error."""
    after_text: bool = False
    timed: bool = False
    """The fault is the primary's silence: its SHORT first-token or idle limit ends the try.
    Otherwise every tier runs with PATIENT limits: no timeout is the point, and a loaded machine
    may hold a healthy first token past SHORT's half second."""
    min_s: float = 0.0
    max_s: float = 5.0
    """Under PATIENT's 10 s limits, a turn this quick waited for no timeout."""
    per_provider: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Overrides of fault/kind for one wire format."""
    first_token_s: float | None = None
    """The primary's first-token timeout when the case needs its own (None: SHORT or PATIENT's)."""


CASES: dict[str, Case] = {
    "429-short-retry-after": Case(
        {"kind": "status", "status": 429, "retry_after": 1}, 2, K.RATE_LIMITED, min_s=1.0
    ),
    "429-long-retry-after": Case(
        {"kind": "status", "status": 429, "retry_after": 30}, 1, K.RATE_LIMITED
    ),
    "429-no-retry-after": Case({"kind": "status", "status": 429}, 1, K.RATE_LIMITED),
    "529-overloaded": Case(
        {"kind": "status", "status": 529}, 2, K.OVERLOADED, per_provider=GEMINI_OVERLOADED
    ),
    "500-server-error": Case({"kind": "status", "status": 500}, 2, K.SERVER_ERROR),
    "503-long-retry-after": Case(
        {"kind": "status", "status": 503, "retry_after": 60},
        1,
        K.SERVER_ERROR,
        per_provider={"gemini": {"kind": K.OVERLOADED}},
    ),
    "quota": Case(
        {"kind": "status", "status": 402},
        1,
        K.QUOTA_EXHAUSTED,
        per_provider={
            # A short retry-after does not earn a retry: quota does not heal by waiting.
            "openai": {
                "fault": {
                    "kind": "status",
                    "status": 429,
                    "code": "insufficient_quota",
                    "retry_after": 1,
                }
            },
            "gemini": {
                "fault": {
                    "kind": "status",
                    "status": 429,
                    "code": "GenerateRequestsPerDayPerProjectPerModel",
                    "retry_after": 1,
                }
            },
        },
    ),
    "reset": Case({"kind": "reset"}, 2, K.CONNECTION),
    # Under SHORT's 5 s total, a turn this quick was ended by the first-token or idle limit.
    "hang": Case({"kind": "hang"}, 1, K.TIMEOUT, timed=True, min_s=0.45, max_s=4.0),
    "slow-first-token": Case(
        {"kind": "slow_first_token", "delay_s": 3}, 1, K.TIMEOUT, timed=True, min_s=0.45, max_s=4.0
    ),
    "slow-first-token-in-time": Case(  # in time with seconds to spare, not 0.35 s
        {"kind": "slow_first_token", "delay_s": 0.15},
        1,
        None,
        answers="primary",
        min_s=0.15,
        first_token_s=3.0,
    ),
    "cut-after-text": Case({"kind": "cut", "after_tokens": 3}, 1, K.CONNECTION, after_text=True),
    "cut-before-text": Case({"kind": "cut", "after_tokens": 0}, 2, K.CONNECTION),
    "stall": Case(
        {"kind": "stall", "after_tokens": 3, "delay_s": 5},
        1,
        K.TIMEOUT,
        after_text=True,
        timed=True,
        min_s=0.45,
        max_s=4.0,
    ),
    "error-event-after-text": Case(
        {"kind": "error_event", "after_tokens": 3},
        1,
        K.OVERLOADED,
        after_text=True,
        per_provider={"openai": {"kind": K.SERVER_ERROR}},
    ),
    "error-event-before-text": Case(
        {"kind": "error_event", "after_tokens": 0},
        2,
        K.OVERLOADED,
        per_provider={"openai": {"kind": K.SERVER_ERROR}},
    ),
    "malformed-after-text": Case(
        {"kind": "malformed", "after_tokens": 3}, 1, K.MALFORMED, after_text=True
    ),
    "malformed-first-event": Case({"kind": "malformed", "n": 1}, 1, K.MALFORMED),
    "no-terminator": Case({"kind": "no_terminator"}, 1, K.TRUNCATED, after_text=True),
    "flap-down": Case(
        {"kind": "flap", "status": 503, "down_s": 30},
        2,
        K.SERVER_ERROR,
        per_provider={"gemini": {"kind": K.OVERLOADED}},
    ),
    "400-bad-request": Case({"kind": "status", "status": 400}, 1, K.BAD_REQUEST, answers=None),
    "404-unknown-model": Case({"kind": "status", "status": 404}, 1, K.NOT_FOUND, answers=None),
    "content-policy": Case(
        {"kind": "status", "status": 400, "message": "Output blocked by content filtering policy"},
        1,
        K.CONTENT_POLICY,
        answers=None,
        per_provider={
            "openai": {
                "fault": {"kind": "status", "status": 400, "code": "content_policy_violation"}
            }
        },
    ),
}


@pytest.mark.parametrize("primary", sorted(CHAINS))
@pytest.mark.parametrize("name", list(CASES))
async def test_fault_on_primary(upstream: Upstream, primary: str, name: str) -> None:
    case = CASES[name]
    override = case.per_provider.get(primary, {})
    fault = override.get("fault", case.fault)
    kind = override.get("kind", case.kind)
    configs, primary_model, second_model = CHAINS[primary]
    timeouts = SHORT if case.timed else PATIENT
    if case.first_token_s is not None:
        timeouts = replace(timeouts, first_token_s=case.first_token_s)
    configs = (
        replace(configs[0], timeouts=timeouts),
        *(replace(config, timeouts=PATIENT) for config in configs[1:]),
    )
    await upstream.fault(primary_model, **fault)
    chain = upstream.chain(configs)
    try:
        turn = await run_turn(chain)
    finally:
        await chain.aclose()

    expected = {primary_model: case.primary_attempts}
    if case.answers == "second":
        expected[second_model] = 1
    assert await upstream.requests() == expected
    assert turn.attempts_per_model() == expected

    assert [r.error_kind for r in turn.failures] == [kind] * len(turn.failures)
    failed_on_primary = case.primary_attempts - (1 if case.answers == "primary" else 0)
    assert len(turn.failures) == failed_on_primary
    assert [r.after_text for r in turn.failures] == [case.after_text] * failed_on_primary
    if case.answers is None:
        assert turn.exhausted.final_kind is kind
        assert turn.exhausted.message
    else:
        answered = primary_model if case.answers == "primary" else second_model
        assert turn.completed.tier.model == answered
        assert (turn.completed.degraded_reason is None) == (case.answers == "primary")
    restarts = [s.restart for s in turn.starts]
    assert restarts == [False] * (len(restarts) - 1) + [
        case.after_text and case.answers == "second"
    ]
    assert case.min_s <= turn.elapsed < case.max_s, turn.elapsed
