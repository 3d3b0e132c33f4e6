from __future__ import annotations

import logging
from dataclasses import replace

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from web.db.models import Attempt, Message, Turn
from web.db.session import read_scope, session_scope
from web.db.turnlog import Checkpoint, checkpoint_turns, interrupt_live_turns, record_outcome
from web.providers.base import ErrorKind
from web.redact import redact
from web.status import FINAL_STATUSES, TurnStatus
from web.wording import INTERRUPTED_MESSAGE, degraded_reason

from support.database import BACKENDS, add_user_message, start_turn
from support.outcomes import (
    HAIKU,
    OPENAI,
    SONNET,
    answer,
    cancelled,
    failed,
    interrupted,
    no_answer,
    ok,
    stopped,
)

Factory = async_sessionmaker[AsyncSession]


async def load(factory: Factory, turn_id: str) -> tuple[Turn, Message, list[Attempt]]:
    async with read_scope(factory) as session:
        turn = await session.get_one(Turn, turn_id)
        message = (await session.scalars(select(Message).where(Message.turn_id == turn_id))).one()
        attempts = list(
            await session.scalars(
                select(Attempt).where(Attempt.turn_id == turn_id).order_by(Attempt.seq)
            )
        )
    return turn, message, attempts


async def new_turn(factory: Factory) -> str:
    conversation_id, user_message_id = await add_user_message(factory)
    turn_id, _ = await start_turn(
        factory, conversation_id=conversation_id, user_message_id=user_message_id
    )
    return turn_id


@BACKENDS
async def test_start_turn_commits_a_pending_turn_and_an_empty_reply(factory: Factory) -> None:
    conversation_id, user_message_id = await add_user_message(factory, "What is WAL?")
    turn_id, message_id = await start_turn(
        factory, conversation_id=conversation_id, user_message_id=user_message_id
    )
    turn, message, attempts = await load(factory, turn_id)
    assert (turn.status, turn.conversation_id, turn.user_message_id) == (
        "pending",
        conversation_id,
        user_message_id,
    )
    assert turn.tier is None and turn.finished_at is None and turn.started_at.tzinfo is not None
    assert (message.id, message.role, message.content) == (message_id, "assistant", "")
    assert message.id > user_message_id
    assert attempts == []


@BACKENDS
async def test_primary_turn(factory: Factory) -> None:
    turn_id = await new_turn(factory)
    attempt = ok(SONNET, 1, ttft=0.31, elapsed=1.5)
    outcome = answer(
        SONNET, "Write-ahead logging.", (attempt,), ttft=0.35, total=1.6, tokens=(12, 34)
    )
    await record_outcome(factory, turn_id, outcome)
    turn, message, attempts = await load(factory, turn_id)
    assert (turn.status, turn.tier, turn.tier_index, turn.provider, turn.model) == (
        "ok",
        "sonnet",
        0,
        "anthropic",
        "claude-sonnet-4-6",
    )
    assert turn.degraded_reason is None and turn.error_message is None
    assert turn.ttft_ms == pytest.approx(350) and turn.total_ms == pytest.approx(1600)
    assert (turn.input_tokens, turn.output_tokens, turn.attempt_count) == (12, 34, 1)
    assert turn.finished_at is not None and turn.finished_at >= turn.started_at
    assert message.content == "Write-ahead logging."
    [row] = attempts
    assert (row.seq, row.tier, row.outcome, row.error_kind, row.request_id) == (
        1,
        "sonnet",
        "ok",
        None,
        "req_1",
    )
    assert row.ttft_ms == pytest.approx(310) and row.elapsed_ms == pytest.approx(1500)
    assert abs(row.started_at.timestamp() - attempt.started_at) < 0.001


@BACKENDS
async def test_a_reply_cut_at_the_length_limit_is_marked(factory: Factory) -> None:
    normal, cut = await new_turn(factory), await new_turn(factory)
    for turn_id, hit in ((normal, False), (cut, True)):
        outcome = answer(SONNET, "Long", (ok(SONNET, 1),), tokens=(1, 8192), hit_length_limit=hit)
        await record_outcome(factory, turn_id, outcome)
    assert (await load(factory, normal))[0].hit_length_limit is False
    assert (await load(factory, cut))[0].hit_length_limit is True


@BACKENDS
async def test_turn_answered_by_haiku_keeps_why_sonnet_failed(factory: Factory) -> None:
    turn_id = await new_turn(factory)
    records = (
        failed(SONNET, 1, ErrorKind.OVERLOADED, 529, request_id="req_s1", retry_after=7.0),
        ok(HAIKU, 2),
    )
    reason = degraded_reason(HAIKU, records)
    await record_outcome(factory, turn_id, answer(HAIKU, "Short answer.", records, ttft=0.4))
    turn, message, attempts = await load(factory, turn_id)
    assert (turn.status, turn.tier, turn.tier_index, turn.model) == (
        "degraded",
        "haiku",
        1,
        "claude-haiku-4-5-20251001",
    )
    assert turn.degraded_reason == reason
    assert turn.attempt_count == 2 and message.content == "Short answer."
    assert [(a.seq, a.tier, a.outcome, a.error_kind, a.http_status) for a in attempts] == [
        (1, "sonnet", "failed", "overloaded", 529),
        (2, "haiku", "ok", None, None),
    ]
    assert (attempts[0].request_id, attempts[0].retry_after_s) == ("req_s1", 7.0)


@BACKENDS
async def test_turn_answered_by_openai_after_both_anthropic_tiers_failed(factory: Factory) -> None:
    turn_id = await new_turn(factory)
    records = (
        failed(SONNET, 1, ErrorKind.RATE_LIMITED, 429),
        failed(HAIKU, 2, ErrorKind.CONNECTION, None, after_text=True),
        ok(OPENAI, 3),
    )
    await record_outcome(factory, turn_id, answer(OPENAI, "From GPT.", records, ttft=1.2))
    turn, _, attempts = await load(factory, turn_id)
    assert (turn.status, turn.tier, turn.provider, turn.tier_index) == (
        "degraded",
        "openai",
        "openai",
        2,
    )
    assert [(a.tier, a.error_kind, a.http_status, a.after_text) for a in attempts] == [
        ("sonnet", "rate_limited", 429, False),
        ("haiku", "connection", None, True),
        ("openai", None, None, False),
    ]


@BACKENDS
async def test_all_tiers_failed(factory: Factory) -> None:
    turn_id = await new_turn(factory)
    records = (
        failed(SONNET, 1, ErrorKind.SERVER_ERROR, 500),
        failed(HAIKU, 2, ErrorKind.TIMEOUT, None),
        failed(OPENAI, 3, ErrorKind.QUOTA_EXHAUSTED, 429),
    )
    outcome = no_answer(
        "No model could answer right now. Try again in a minute.", records, total=3.5
    )
    await record_outcome(factory, turn_id, outcome)
    turn, message, attempts = await load(factory, turn_id)
    # The last tier tried is not "the tier that answered": a failed turn has none.
    assert (turn.status, turn.tier, turn.tier_index) == ("failed", None, None)
    assert turn.degraded_reason is None
    assert turn.error_message == outcome.error
    assert turn.total_ms == pytest.approx(3500) and turn.attempt_count == 3
    assert message.content == ""
    assert [a.error_kind for a in attempts] == ["server_error", "timeout", "quota_exhausted"]


@BACKENDS
async def test_stopped_by_the_user_keeps_the_partial_text(factory: Factory) -> None:
    turn_id = await new_turn(factory)
    records = (
        failed(SONNET, 1, ErrorKind.OVERLOADED, 529),
        cancelled(HAIKU, 2, elapsed=0.8, ttft=0.25),
    )
    await record_outcome(factory, turn_id, stopped("The first half of", HAIKU, records, total=0.9))
    turn, message, attempts = await load(factory, turn_id)
    assert (turn.status, turn.tier, turn.tier_index) == ("stopped", "haiku", 1)
    assert message.content == "The first half of"
    assert turn.total_ms == pytest.approx(900)
    assert turn.ttft_ms is not None and turn.ttft_ms >= 0
    # The same sentence the user saw while it streamed (the chain's wording), not another one.
    assert turn.degraded_reason == degraded_reason(HAIKU, records)
    assert turn.degraded_reason == (
        "Reply generated by Haiku because Sonnet was unavailable (overloaded)."
    )
    assert [a.outcome for a in attempts] == ["failed", "cancelled"]


@BACKENDS
async def test_interrupted_by_shutdown_keeps_the_partial_text(factory: Factory) -> None:
    turn_id = await new_turn(factory)
    records = (cancelled(SONNET, 1, elapsed=0.4),)
    await record_outcome(factory, turn_id, interrupted("Partial", SONNET, records))
    turn, message, attempts = await load(factory, turn_id)
    assert (turn.status, turn.tier, turn.degraded_reason) == ("interrupted", "sonnet", None)
    assert message.content == "Partial" and len(attempts) == 1
    assert turn.total_ms is not None and turn.total_ms >= 0


@BACKENDS
async def test_interrupt_live_turns_at_start(factory: Factory) -> None:
    pending = await new_turn(factory)
    streaming = await new_turn(factory)
    done = await new_turn(factory)
    await record_outcome(factory, done, answer(SONNET, "Done.", (ok(SONNET, 1),)))
    async with session_scope(factory) as session:
        # What a crashed server can leave: a streaming turn whose text was saved earlier.
        turn = await session.get_one(Turn, streaming)
        turn.status = TurnStatus.STREAMING
        message = (await session.scalars(select(Message).where(Message.turn_id == streaming))).one()
        message.content = "Half a re"

    assert await interrupt_live_turns(factory) == 2
    assert await interrupt_live_turns(factory) == 0

    for turn_id, text in ((pending, ""), (streaming, "Half a re")):
        turn, message, _ = await load(factory, turn_id)
        assert turn.status == "interrupted" and turn.finished_at is not None
        assert message.content == text
    turn, message, _ = await load(factory, done)
    assert (turn.status, message.content) == ("ok", "Done.")


@BACKENDS
async def test_a_checkpoint_saves_live_text_and_never_touches_a_final_turn(
    factory: Factory,
) -> None:
    live = await new_turn(factory)
    done = await new_turn(factory)
    await record_outcome(factory, done, answer(SONNET, "Done.", (ok(SONNET, 1),)))

    reason = degraded_reason(HAIKU, [failed(SONNET, 1, ErrorKind.OVERLOADED, 529)])
    saves = [
        Checkpoint(live, "Half a re", HAIKU, reason),
        Checkpoint(done, "Stale", SONNET, None),  # lost the race with record_outcome
    ]
    assert await checkpoint_turns(factory, saves) == 1
    turn, message, _ = await load(factory, live)
    assert (turn.status, turn.tier, turn.tier_index, turn.model) == (
        "streaming",
        "haiku",
        1,
        HAIKU.model,
    )
    assert (message.content, turn.degraded_reason) == ("Half a re", reason)
    turn, message, _ = await load(factory, done)
    assert (turn.status, message.content) == ("ok", "Done.")

    # The server dies; at the next start the turn is interrupted with its checkpointed text.
    assert await interrupt_live_turns(factory) == 1
    turn, message, _ = await load(factory, live)
    assert (turn.status, turn.tier, message.content) == ("interrupted", "haiku", "Half a re")
    assert await checkpoint_turns(factory, [Checkpoint(live, "Later", HAIKU, None)]) == 0
    assert (await load(factory, live))[1].content == "Half a re"


@BACKENDS
async def test_the_first_final_write_wins(factory: Factory) -> None:
    turn_id = await new_turn(factory)
    assert await interrupt_live_turns(factory) == 1
    await record_outcome(factory, turn_id, answer(SONNET, "Late.", (ok(SONNET, 1),)))
    turn, message, attempts = await load(factory, turn_id)
    assert (turn.status, message.content, attempts) == ("interrupted", "", [])


@BACKENDS
async def test_status_follows_the_tier_that_completed(factory: Factory) -> None:
    turn_id = await new_turn(factory)
    await record_outcome(factory, turn_id, answer(HAIKU, "Hi", (ok(HAIKU, 1),)))
    turn, _, _ = await load(factory, turn_id)
    assert turn.status == "degraded"  # a primary-only status is never stored for another tier


def test_every_outcome_is_a_final_status() -> None:
    outcomes = [
        answer(SONNET, "Hi", (ok(SONNET, 1),)),
        answer(HAIKU, "Hi", (ok(HAIKU, 1),)),
        no_answer("No model could answer.", ()),
        stopped("Half", SONNET, ()),
        interrupted("Half", None, ()),
    ]
    statuses = [o.status for o in outcomes]
    assert statuses == [
        TurnStatus.OK,
        TurnStatus.DEGRADED,
        TurnStatus.FAILED,
        TurnStatus.STOPPED,
        TurnStatus.INTERRUPTED,
    ]
    assert all(s in FINAL_STATUSES for s in statuses)
    assert interrupted("Half", None, ()).error == INTERRUPTED_MESSAGE


@BACKENDS
async def test_no_credential_reaches_the_table_or_the_log(
    factory: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    key = "sk-ant-TESTKEY-9c1f4e2b7a"
    turn_id = await new_turn(factory)
    records = (
        replace(
            failed(SONNET, 1, ErrorKind.AUTH, 401),
            error_message=f"Incorrect API key provided: {key} (header x-api-key: {key})",
        ),
        replace(
            failed(HAIKU, 2, ErrorKind.AUTH, 401),
            error_message=f"Authorization: Bearer {key}",
        ),
    )
    with caplog.at_level(logging.DEBUG):
        await record_outcome(factory, turn_id, no_answer(f"failed with key {key}", records))
    turn, _, attempts = await load(factory, turn_id)
    stored = [turn.error_message or ""] + [a.error_message or "" for a in attempts]
    assert all("TESTKEY" not in s for s in stored), stored
    assert "[redacted" in attempts[0].error_message  # type: ignore[operator]
    assert "TESTKEY" not in caplog.text


def test_redact_keeps_ordinary_words() -> None:
    assert redact("overloaded_error: Overloaded (request req_011)") == (
        "overloaded_error: Overloaded (request req_011)"
    )
    assert redact("postgresql://u:pw@host/db") == "postgresql://u:***@host/db"
    assert "sk-proj-abcdefgh12" not in redact("key sk-proj-abcdefgh12 refused")
    once = redact("x-api-key: sk-ant-abcdefgh12; api_key=abcdef123; Bearer abcdefghijkl")
    assert once == "x-api-key: [redacted key]; api_key=[redacted]; Bearer [redacted]"
    assert redact(once) == once
