"""Queued turns end to end: the runner queues, a worker submits through the official SDK to the
simulator's Message Batches API, polls and lands the reply, once."""

from __future__ import annotations

from typing import Any

import pytest

from sim.conftest import bounded

from web.deferral import DEFERRAL_TIER
from web.sim.replies import reply_text
from web.status import AttemptOutcome, JobState, TurnStatus
from web.wording import queue_expired_message, queued_reason

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
