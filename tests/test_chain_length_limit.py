"""A reply that reaches its length limit is cut by the provider: the adapters say so in Usage and
the chain in Completed.hit_length_limit, with each tier's own max_output_tokens as the limit."""

from __future__ import annotations

from dataclasses import replace

import pytest

from web.events import AttemptRecord, Completed
from web.providers.base import ChatMessage, ChatRequest, TextDelta, Usage
from web.settings import TierConfig
from web.sim.replies import reply_text, tokenize

from providers.test_adapters import MAKERS
from support.engine import (
    GPT,
    GPT_TIER,
    HAIKU_TIER,
    PATIENT,
    PROMPT,
    REPLY_TOKENS,
    SONNET,
    SONNET_TIER,
    Upstream,
)

LIMIT = 5
"""Fewer than the simulator's REPLY_TOKENS, so every reply is cut."""

STOP_WORDS = {"anthropic": ("end_turn", "max_tokens"), "openai": ("stop", "length")}


def cut_reply(model: str) -> str:
    return "".join(tokenize(reply_text(model, PROMPT, REPLY_TOKENS))[:LIMIT])


@pytest.mark.parametrize("name", sorted(MAKERS))
@pytest.mark.parametrize("max_tokens", [LIMIT, 1024])
async def test_the_adapters_report_why_the_reply_ended(
    upstream: Upstream, name: str, max_tokens: int
) -> None:
    make, model = MAKERS[name]
    provider = make(upstream.url)
    request = ChatRequest(messages=(ChatMessage("user", PROMPT),), max_tokens=max_tokens)
    try:
        items = [item async for item in provider.stream(request, model)]
    finally:
        await provider.aclose()
    *texts, usage = items
    assert isinstance(usage, Usage)
    text = "".join(t.text for t in texts if isinstance(t, TextDelta))
    finished, cut = STOP_WORDS[name]
    if max_tokens == LIMIT:
        assert (usage.stop_reason, usage.hit_length_limit) == (cut, True)
        assert text == cut_reply(model)
    else:
        assert (usage.stop_reason, usage.hit_length_limit) == (finished, False)
        assert text == reply_text(model, PROMPT, REPLY_TOKENS)


@pytest.mark.parametrize(
    ("primary", "model", "cut"),
    [(SONNET_TIER, SONNET, "max_tokens"), (GPT_TIER, GPT, "length")],
)
async def test_a_tier_with_a_small_max_output_tokens_completes_cut_and_flagged(
    upstream: Upstream, primary: TierConfig, model: str, cut: str
) -> None:
    small = replace(primary, max_output_tokens=LIMIT, timeouts=PATIENT)
    chain = upstream.chain((small, replace(HAIKU_TIER, timeouts=PATIENT)))
    request = ChatRequest(messages=(ChatMessage("user", PROMPT),))  # its own 1024 is replaced
    try:
        records: list[AttemptRecord] = []
        events = [event async for event in chain.run(request, on_attempt=records.append)]
    finally:
        await chain.aclose()
    done = events[-1]
    assert isinstance(done, Completed)
    assert done.tier.model == model and done.tier.is_primary
    assert (done.hit_length_limit, done.stop_reason) == (True, cut)
    assert done.text == cut_reply(model)
    assert done.output_tokens == LIMIT
    assert [r.outcome for r in records] == ["ok"]  # not a failure: no other tier tried
    assert await upstream.requests() == {model: 1}


async def test_a_reply_within_the_limit_is_not_flagged(upstream: Upstream) -> None:
    chain = upstream.chain((replace(SONNET_TIER, timeouts=PATIENT),))
    request = ChatRequest(messages=(ChatMessage("user", PROMPT),), max_tokens=LIMIT)
    try:
        events = [event async for event in chain.run(request)]
    finally:
        await chain.aclose()
    done = events[-1]
    # The tier's max_output_tokens (8192 by default), not the request's, is the limit sent.
    assert isinstance(done, Completed)
    assert (done.hit_length_limit, done.stop_reason) == (False, "end_turn")
    assert done.text == reply_text(SONNET, PROMPT, REPLY_TOKENS)
