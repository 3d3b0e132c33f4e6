"""Queued turns end to end: the runner queues, a worker submits through the official SDK to the
simulator's Message Batches API, polls and lands the reply, once."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import pytest
from sim.conftest import bounded

from web.db import deferred
from web.db.models import DeferredJob
from web.db.session import read_scope
from web.deferral import DEFERRAL_TIER
from web.sim.replies import reply_text
from web.status import AttemptOutcome, JobState, TurnStatus
from web.wording import (
    QUEUE_CANCELLED_NOTE,
    queue_expired_message,
    queue_rejected_message,
    queued_reason,
)

from support.database import BACKENDS
from support.queue_bed import BATCH_DELAY_S, PROFILE, SONNET

PROMPT = "What is an understudy?"
SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@BACKENDS
@bounded(60)
async def test_all_tiers_down_queued_then_the_batch_lands_the_reply_once(make_bed: Any) -> None:
    bed = await make_bed()
    bed.all_down()
    turn_id = await bed.ask(PROMPT)

    turn = await bed.turn(turn_id)
    assert turn.status is TurnStatus.QUEUED
    assert turn.degraded_reason == queued_reason(["Sonnet", "Haiku", "GPT-5.5"])
    job = await bed.job(turn_id)
    assert job.state is JobState.WAITING and job.batch_id is None

    worker = bed.worker()
    assert await worker.run_once() == 1
    job = await bed.job(turn_id)
    assert job.state is JobState.SUBMITTED and job.batch_id and job.submissions == 1
    assert await bed.batch_creates() == 1
    assert await worker.run_once() == 0  # not due again before poll_s

    bed.clock.advance(5)
    assert await worker.run_once() == 1  # polled: still in progress
    assert (await bed.job(turn_id)).polls == 1
    assert (await bed.turn(turn_id)).status is TurnStatus.QUEUED

    bed.clock.advance(BATCH_DELAY_S)
    assert await worker.run_once() == 1
    turn = await bed.turn(turn_id)
    assert turn.status is TurnStatus.DEGRADED
    assert turn.tier == DEFERRAL_TIER and turn.model == SONNET
    assert await bed.reply(turn_id) == reply_text(SONNET, PROMPT, PROFILE.reply_tokens)
    assert turn.degraded_reason is not None
    assert turn.degraded_reason.startswith("Queued at ")
    assert "Sonnet, Haiku and GPT-5.5 were unavailable" in turn.degraded_reason
    assert (await bed.job(turn_id)).state is JobState.DONE

    bed.clock.advance(1000)
    assert await worker.run_once() == 0
    assert await bed.batch_creates() == 1
    outcomes = [(a.tier, a.outcome) for a in await bed.attempts(turn_id)]
    assert outcomes[-3:] == [
        (DEFERRAL_TIER, AttemptOutcome.SUBMITTED),
        (DEFERRAL_TIER, AttemptOutcome.PENDING),
        (DEFERRAL_TIER, AttemptOutcome.OK),
    ]
    assert {t for t, _ in outcomes[:-3]} == {"sonnet", "haiku", "openai"}


@SQLITE
@bounded(60)
async def test_an_errored_result_is_submitted_again_and_then_lands(make_bed: Any) -> None:
    bed = await make_bed()
    bed.all_down()
    bed.sim.registry.add({"model": SONNET, "kind": "batch_errored", "api": "batches", "count": 1})
    turn_id = await bed.ask(PROMPT)
    worker = bed.worker()
    await worker.run_once()
    bed.clock.advance(BATCH_DELAY_S)
    await worker.run_once()  # ended: errored -> waiting again, after a backoff
    job = await bed.job(turn_id)
    assert job.state is JobState.WAITING and job.batch_id is None
    assert job.last_error and "overloaded" in job.last_error
    assert (await bed.turn(turn_id)).status is TurnStatus.QUEUED

    bed.clock.advance(20)  # poll_s * 2 ** 1 = 10 s at the longest jitter... and a margin
    await worker.run_once()
    assert await bed.batch_creates() == 2
    bed.clock.advance(BATCH_DELAY_S)
    await worker.run_once()
    assert (await bed.turn(turn_id)).status is TurnStatus.DEGRADED
    assert await bed.reply(turn_id) == reply_text(SONNET, PROMPT, PROFILE.reply_tokens)


@SQLITE
@bounded(60)
async def test_past_expire_s_the_turn_fails_with_words_that_say_so(make_bed: Any) -> None:
    bed = await make_bed(expire_s=300)
    bed.all_down()
    bed.sim.registry.add({"model": SONNET, "kind": "batch_expired", "api": "batches"})
    turn_id = await bed.ask(PROMPT)
    job = await bed.job(turn_id)
    worker = bed.worker()
    for _ in range(40):
        await worker.run_once()
        bed.clock.advance(40)
        if (await bed.turn(turn_id)).status is not TurnStatus.QUEUED:
            break
    turn = await bed.turn(turn_id)
    assert turn.status is TurnStatus.FAILED
    expected = queue_expired_message(
        queued_at=job.queued_at.timestamp(),
        expire_s=300,
        last_error=(await bed.job(turn_id)).last_error,
    )
    assert turn.error_message == expected
    assert "no model answered it within 5 min" in expected
    assert (await bed.job(turn_id)).state is JobState.FAILED
    assert await bed.batch_creates() >= 2  # expired results were sent again until the deadline


@SQLITE
@bounded(60)
async def test_cancel_withdraws_the_job_and_cancels_its_batch(make_bed: Any) -> None:
    bed = await make_bed()
    bed.all_down()
    turn_id = await bed.ask(PROMPT)
    worker = bed.worker()
    await worker.run_once()
    batch_id = (await bed.job(turn_id)).batch_id
    assert batch_id

    assert await deferred.cancel(bed.sessions, turn_id, now=bed.now())
    turn = await bed.turn(turn_id)
    assert turn.status is TurnStatus.STOPPED and turn.error_message == QUEUE_CANCELLED_NOTE
    assert (await bed.job(turn_id)).state is JobState.CANCELLING
    assert await worker.run_once() == 1  # due at once: the batch request is cancelled
    assert (await bed.job(turn_id)).state is JobState.CANCELLED
    client = anthropic.AsyncAnthropic(
        base_url=f"{bed.sim.url}/anthropic", api_key="k", max_retries=0
    )
    batch = await client.messages.batches.retrieve(batch_id)
    await client.close()
    assert batch.processing_status in ("canceling", "ended")
    assert batch.request_counts.succeeded == 0

    bed.clock.advance(BATCH_DELAY_S * 2)
    assert await worker.run_once() == 0
    assert (await bed.turn(turn_id)).status is TurnStatus.STOPPED
    assert await bed.reply(turn_id) == ""
    assert not await deferred.cancel(bed.sessions, turn_id, now=bed.now())  # once


@SQLITE
@bounded(60)
async def test_a_cancel_before_submission_sends_nothing(make_bed: Any) -> None:
    bed = await make_bed()
    bed.all_down()
    turn_id = await bed.ask(PROMPT)
    assert await deferred.cancel(bed.sessions, turn_id, now=bed.now())
    assert (await bed.job(turn_id)).state is JobState.CANCELLED
    assert await bed.worker().run_once() == 0
    assert await bed.batch_creates() == 0


@SQLITE
@pytest.mark.parametrize(
    "fault",
    [
        {"status": 400, "error_type": "invalid_request_error", "message": "messages: bad role"},
        {
            "status": 400,
            "error_type": "invalid_request_error",
            "message": "Output blocked by content filtering policy",
        },
    ],
    ids=["bad_request", "content_policy"],
)
@bounded(60)
async def test_requests_that_would_fail_again_are_never_queued(
    make_bed: Any, fault: dict[str, Any]
) -> None:
    bed = await make_bed()
    for model in (SONNET, "claude-haiku-4-5-20251001", "gpt-5.5"):
        bed.sim.registry.add({"model": model, "kind": "status", **fault})
    turn_id = await bed.ask(PROMPT)
    turn = await bed.turn(turn_id)
    assert turn.status is TurnStatus.FAILED
    async with read_scope(bed.sessions) as session:
        assert await session.get(DeferredJob, turn_id) is None


@SQLITE
@bounded(60)
async def test_a_batch_refused_for_good_fails_the_turn_with_its_reason(make_bed: Any) -> None:
    bed = await make_bed()
    bed.all_down()
    bed.sim.registry.add(
        {
            "model": SONNET,
            "kind": "batch_errored",
            "api": "batches",
            "error_type": "invalid_request_error",
            "message": "max_tokens: too large",
        }
    )
    turn_id = await bed.ask(PROMPT)
    worker = bed.worker()
    await worker.run_once()
    bed.clock.advance(BATCH_DELAY_S)
    await worker.run_once()
    turn = await bed.turn(turn_id)
    assert turn.status is TurnStatus.FAILED
    assert turn.error_message == queue_rejected_message(
        "batch invalid_request_error: max_tokens: too large"
    )
    assert await bed.batch_creates() == 1


@pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
@bounded(60)
async def test_two_workers_on_postgresql_take_one_job_once(make_bed: Any) -> None:
    bed = await make_bed()
    bed.all_down()
    turn_ids = [await bed.ask(f"Question {i}?") for i in range(6)]
    first, second = bed.worker("w1"), bed.worker("w2")
    claimed = await asyncio.gather(first.run_once(), second.run_once())
    assert sum(claimed) == len(turn_ids)  # every job claimed, none twice
    assert await bed.batch_creates() == len(turn_ids)

    bed.clock.advance(BATCH_DELAY_S + 5)
    await asyncio.gather(first.run_once(), second.run_once())
    await asyncio.gather(first.run_once(), second.run_once())
    for i, turn_id in enumerate(turn_ids):
        assert (await bed.turn(turn_id)).status is TurnStatus.DEGRADED
        expected = reply_text(SONNET, f"Question {i}?", PROFILE.reply_tokens)
        assert await bed.reply(turn_id) == expected
        oks = [a for a in await bed.attempts(turn_id) if a.outcome is AttemptOutcome.OK]
        assert len(oks) == 1
    assert await bed.batch_creates() == len(turn_ids)


@SQLITE
@bounded(60)
async def test_a_worker_taking_over_a_dead_workers_job_polls_its_batch(make_bed: Any) -> None:
    bed = await make_bed()
    bed.all_down()
    turn_id = await bed.ask(PROMPT)
    dead = bed.worker("dead")
    await dead.run_once()
    # "dead" claims the job again and dies holding its lease, before asking anything.
    bed.clock.advance(5)
    claimed = await deferred.claim_due(bed.sessions, "dead", now=bed.now(), lease_s=120)
    assert [j.turn_id for j in claimed] == [turn_id]
    survivor = bed.worker("survivor")
    assert await survivor.run_once() == 0  # leased
    bed.clock.advance(120 + BATCH_DELAY_S)
    assert await survivor.run_once() == 1
    assert (await bed.turn(turn_id)).status is TurnStatus.DEGRADED
    assert await bed.batch_creates() == 1  # polled the stored batch, never sent again


@SQLITE
@bounded(60)
async def test_the_retry_backend_asks_the_chain_again_until_it_answers(make_bed: Any) -> None:
    bed = await make_bed(backend="retry")
    bed.all_down()
    turn_id = await bed.ask(PROMPT)
    worker = bed.worker()
    await worker.run_once()  # still down: a miss, waiting again
    job = await bed.job(turn_id)
    assert job.state is JobState.WAITING and job.submissions == 1
    assert (await bed.turn(turn_id)).status is TurnStatus.QUEUED

    bed.sim.registry.clear()
    bed.clock.advance(20)
    await worker.run_once()
    turn = await bed.turn(turn_id)
    assert turn.status is TurnStatus.DEGRADED and turn.model == SONNET
    assert await bed.reply(turn_id) == reply_text(SONNET, PROMPT, PROFILE.reply_tokens)
    assert turn.degraded_reason and "answered via Sonnet, on a retry," in turn.degraded_reason
    assert await bed.batch_creates() == 0
