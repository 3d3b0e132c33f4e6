"""The admin's reads of the deferral (web.db.admin_queue, and the queued and delayed lists of
web.db.admin_queries), on SQLite and PostgreSQL, against a fixed ``now``."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from web.db.admin_queries import ListKind, TurnFilter, problem_turns, turn_detail, window_stats
from web.db.admin_queue import jobs_of, queue_summary
from web.db.models import DeferredJob
from web.db.session import read_scope, session_scope
from web.status import AttemptOutcome, JobState

from support.database import BACKENDS
from support.factories import NOW, turn
from support.jobs import BATCH, UNAVAILABLE, Poll, deferred_turn

Factory = async_sessionmaker[AsyncSession]
MINUTE = timedelta(minutes=1)


@BACKENDS
async def test_an_empty_queue(factory: Factory) -> None:
    await turn(factory, "haiku")
    await deferred_turn(
        factory, state=JobState.DONE, queued_at=NOW - 60 * MINUTE, finished_at=NOW - 50 * MINUTE
    )
    async with read_scope(factory) as session:
        queue = await queue_summary(session)
    assert (queue.depth, queue.oldest_queued_at, queue.backends) == (0, None, ())
    assert queue.oldest_age(NOW) is None


@BACKENDS
async def test_the_queue_counts_open_jobs_and_ages_the_oldest(factory: Factory) -> None:
    await deferred_turn(factory, state=JobState.WAITING, queued_at=NOW - 10 * MINUTE)
    await deferred_turn(factory, state=JobState.SUBMITTED, queued_at=NOW - 30 * MINUTE)
    await deferred_turn(
        factory, state=JobState.CANCELLING, queued_at=NOW - 5 * MINUTE, backend="retry"
    )
    # Ended jobs are not in the queue, however old.
    for state in (JobState.DONE, JobState.FAILED, JobState.CANCELLED):
        await deferred_turn(
            factory, state=state, queued_at=NOW - 300 * MINUTE, finished_at=NOW - 200 * MINUTE
        )
    async with read_scope(factory) as session:
        queue = await queue_summary(session)
    assert queue.depth == 3
    assert queue.oldest_queued_at == NOW - 30 * MINUTE
    assert queue.oldest_age(NOW) == 30 * MINUTE
    assert queue.oldest_age(NOW - 40 * MINUTE) == timedelta(0)  # never negative
    assert queue.backends == (("anthropic_batch", 2), ("retry", 1))


@BACKENDS
async def test_the_queued_and_delayed_lists(factory: Factory) -> None:
    haiku = await turn(factory, "haiku", ago=3 * MINUTE)
    failed = await turn(factory, "failed", ago=2 * MINUTE)
    queued = await deferred_turn(factory, state=JobState.SUBMITTED, queued_at=NOW - 20 * MINUTE)
    newer = await deferred_turn(factory, state=JobState.WAITING, queued_at=NOW - 4 * MINUTE)
    delayed = await deferred_turn(
        factory,
        state=JobState.DONE,
        queued_at=NOW - 90 * MINUTE,
        finished_at=NOW - 83 * MINUTE,
        polls=(
            Poll(timedelta(seconds=1), AttemptOutcome.SUBMITTED),
            Poll(timedelta(minutes=3), AttemptOutcome.PENDING),
            Poll(timedelta(minutes=7), AttemptOutcome.OK),
        ),
    )
    expired = await deferred_turn(
        factory, state=JobState.FAILED, queued_at=NOW - 30 * MINUTE, finished_at=NOW
    )
    async with read_scope(factory) as session:
        queued_page = await problem_turns(session, TurnFilter(kind=ListKind.QUEUED))
        delayed_page = await problem_turns(session, TurnFilter(kind=ListKind.DELAYED))
        degraded_page = await problem_turns(session, TurnFilter(kind=ListKind.DEGRADED))
        recent = await problem_turns(
            session, TurnFilter(kind=ListKind.QUEUED, since=NOW - 10 * MINUTE)
        )
        failed_page = await problem_turns(session, TurnFilter(kind=ListKind.FAILED))
    assert [r.id for r in queued_page.rows] == [newer, queued]  # newest first
    assert [r.status for r in queued_page.rows] == ["queued", "queued"]
    assert queued_page.jobs[queued].state == JobState.SUBMITTED
    assert queued_page.jobs[queued].wait(NOW) == 20 * MINUTE  # so far
    assert [r.id for r in recent.rows] == [newer]
    assert [r.id for r in delayed_page.rows] == [delayed]
    job = delayed_page.jobs[delayed]
    assert job.delayed and not job.is_open
    assert job.wait(NOW) == 7 * MINUTE  # finished_at - queued_at, whatever now is
    [row] = delayed_page.rows
    assert (row.status, row.tier) == ("degraded", "deferral")
    assert [(a.tier, a.outcome, a.request_id) for a in row.attempts[3:]] == [
        ("deferral", "submitted", BATCH),
        ("deferral", "pending", BATCH),
        ("deferral", "ok", BATCH),
    ]
    # A delayed reply left the primary: it is degraded too; other lists' rows carry their jobs.
    assert {r.id for r in degraded_page.rows} == {haiku, delayed}
    assert set(degraded_page.jobs) == {delayed}
    assert {r.id for r in failed_page.rows} == {failed, expired}
    assert failed_page.jobs[expired].state == JobState.FAILED


@BACKENDS
async def test_turn_detail_has_its_job(factory: Factory) -> None:
    plain = await turn(factory, "haiku")
    queued = await deferred_turn(
        factory, state=JobState.WAITING, queued_at=NOW - MINUTE, last_error="batch errored"
    )
    async with read_scope(factory) as session:
        without = await turn_detail(session, plain)
        detail = await turn_detail(session, queued)
        none = await jobs_of(session, [])
    assert without is not None and without.job is None
    assert detail is not None and detail.job is not None
    assert (detail.job.backend, detail.job.unavailable, detail.job.last_error) == (
        "anthropic_batch",
        UNAVAILABLE,
        "batch errored",
    )
    assert detail.job.expires_at == NOW - MINUTE + timedelta(hours=24)
    assert none == {}


@BACKENDS
async def test_window_stats_count_queued_turns_apart(factory: Factory) -> None:
    await turn(factory, "ok", ago=MINUTE)
    await turn(factory, "haiku", ago=MINUTE)
    await deferred_turn(factory, state=JobState.SUBMITTED, queued_at=NOW - 5 * MINUTE)
    await deferred_turn(
        factory, state=JobState.DONE, queued_at=NOW - 9 * MINUTE, finished_at=NOW - 8 * MINUTE
    )
    async with read_scope(factory) as session:
        day = await window_stats(session, now=NOW, window=timedelta(days=1), label="24 h")
    # The queued one has not ended: like a live turn it is not in the share yet.
    assert (day.turns, day.degraded, day.failed, day.live, day.queued) == (3, 2, 0, 0, 1)
    assert day.per_tier == (("sonnet", 1), ("haiku", 1), ("deferral", 1))


@BACKENDS
async def test_a_reason_that_is_not_a_json_list_is_shown_as_it_is(factory: Factory) -> None:
    ids = [
        await deferred_turn(factory, state=JobState.WAITING, queued_at=NOW - MINUTE)
        for _ in range(2)
    ]
    async with session_scope(factory) as session:
        for turn_id, reason in zip(ids, ("Sonnet was down", '{"not": "a list"}'), strict=True):
            await session.execute(
                update(DeferredJob).where(DeferredJob.turn_id == turn_id).values(reason=reason)
            )
    async with read_scope(factory) as session:
        jobs = await jobs_of(session, ids)
    assert [jobs[i].unavailable for i in ids] == [("Sonnet was down",), ('{"not": "a list"}',)]
