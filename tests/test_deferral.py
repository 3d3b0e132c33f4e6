"""Which turns are queued (web.deferral's policy) and the request stored with the job."""

from __future__ import annotations

import pytest

from web.deferral import Deferral, request_from_json, request_to_json, unavailable_labels
from web.deferral_config import Backend, DeferralConfig
from web.events import AttemptRecord, TierInfo
from web.providers.base import ChatMessage, ChatRequest, ErrorKind
from web.status import AttemptOutcome

SONNET = TierInfo("sonnet", "anthropic", "claude-sonnet-4-6", "Sonnet", "", 0)
HAIKU = TierInfo("haiku", "anthropic", "claude-haiku-4-5", "Haiku", "fast mode", 1)
GPT = TierInfo("openai", "openai", "gpt-5.5", "GPT-5.5", "fallback provider", 2)
BATCHES = Deferral(
    DeferralConfig(Backend.ANTHROPIC_BATCH, "Sonnet (Message Batches)", model="m", api_key_env="A"),
    TierInfo("deferral", "anthropic", "m", "Sonnet (Message Batches)", "delayed reply", 3),
    frozenset({"sonnet", "haiku"}),
    8192,
)


def failed(
    tier: TierInfo, kind: ErrorKind, outcome: AttemptOutcome = AttemptOutcome.FAILED
) -> AttemptRecord:
    return AttemptRecord(tier, 1, 0.0, 0.1, None, outcome, error_kind=kind)


@pytest.mark.parametrize(
    "kinds",
    [
        (ErrorKind.RATE_LIMITED, ErrorKind.OVERLOADED, ErrorKind.SERVER_ERROR),
        (ErrorKind.TIMEOUT, ErrorKind.CONNECTION, ErrorKind.TRUNCATED),
        (ErrorKind.OVERLOADED, ErrorKind.OVERLOADED, ErrorKind.AUTH),  # GPT's key: not the batch's
    ],
)
def test_unavailability_is_queued(kinds: tuple[ErrorKind, ...]) -> None:
    records = [failed(t, k) for t, k in zip((SONNET, HAIKU, GPT), kinds, strict=True)]
    assert BATCHES.accepts(records)


def test_open_breakers_are_unavailability_too() -> None:
    records = [failed(t, ErrorKind.OVERLOADED, AttemptOutcome.SKIPPED) for t in (SONNET, HAIKU)]
    assert BATCHES.accepts([*records, failed(GPT, ErrorKind.RATE_LIMITED)])


@pytest.mark.parametrize(
    "kind", [ErrorKind.BAD_REQUEST, ErrorKind.CONTENT_POLICY, ErrorKind.CONTEXT_TOO_LONG]
)
def test_what_would_fail_again_is_never_queued(kind: ErrorKind) -> None:
    assert not BATCHES.accepts([failed(SONNET, ErrorKind.OVERLOADED), failed(HAIKU, kind)])


def test_a_rejected_key_of_the_batch_api_is_not_queued() -> None:
    records = [failed(SONNET, ErrorKind.AUTH), failed(GPT, ErrorKind.OVERLOADED)]
    assert not BATCHES.accepts(records)
    assert not BATCHES.accepts([failed(GPT, ErrorKind.AUTH)])  # only configuration errors
    assert not BATCHES.accepts([])  # nothing was unavailable


def test_the_labels_of_who_could_not_answer_once_each_in_chain_order() -> None:
    records = [failed(HAIKU, ErrorKind.OVERLOADED), failed(SONNET, ErrorKind.OVERLOADED)]
    records.append(failed(HAIKU, ErrorKind.OVERLOADED))
    assert unavailable_labels(records) == ["Sonnet", "Haiku"]


def test_the_stored_request_round_trips() -> None:
    request = ChatRequest(
        messages=(
            ChatMessage("user", "Hi <b>"),
            ChatMessage("assistant", "Hello"),
            ChatMessage("user", "é?"),
        ),
        system="Be brief.",
        max_tokens=8192,
    )
    assert request_from_json(request_to_json(request)) == request
