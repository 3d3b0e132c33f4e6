"""Drills on the admin page's reads, on SQLite and PostgreSQL: the drills (web.db.admin_drills),
and their turns kept out of every users' figure (web.db.admin_queries, tier_mix, admin_queue)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from web.db.admin_drills import (
    OVERDUE_AFTER,
    DrillState,
    drill_report,
    drills,
    standing,
)
from web.db.admin_queries import (
    ListKind,
    TurnFilter,
    known_tiers,
    problem_turns,
    turns_for_export,
    window_stats,
)
from web.db.admin_queue import queue_summary
from web.db.session import read_scope
from web.db.tier_mix import tier_mix
from web.status import JobState

from support.database import BACKENDS
from support.drills import add_drill, flag
from support.factories import NOW, turn
from support.jobs import deferred_turn

Factory = async_sessionmaker[AsyncSession]
MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)


async def _ids(session: AsyncSession, filt: TurnFilter) -> list[str]:
    return [r.id for r in (await problem_turns(session, filt)).rows]


@BACKENDS
async def test_drill_turns_are_in_no_users_figure_and_listed_apart(factory: Factory) -> None:
    users = {
        "ok": await turn(factory, "ok", ago=60 * MINUTE),
        "haiku": await turn(factory, "haiku", ago=120 * MINUTE),
        "failed": await turn(factory, "failed", ago=180 * MINUTE),
        "queued": await deferred_turn(factory, state=JobState.WAITING, queued_at=NOW - MINUTE),
    }
    drill = await add_drill(factory, started_at=NOW - 40 * MINUTE)
    other = await add_drill(factory, started_at=NOW - 3 * DAY)
    ours = [
        await turn(factory, "haiku", ago=30 * MINUTE),
        await turn(factory, "haiku", ago=29 * MINUTE),
        await turn(factory, "openai", ago=20 * MINUTE),
        await turn(factory, "failed", ago=10 * MINUTE),
        await turn(factory, "ok", ago=5 * MINUTE),
        await deferred_turn(factory, state=JobState.WAITING, queued_at=NOW - 2 * MINUTE),
    ]
    theirs = await turn(factory, "haiku", ago=3 * DAY)
    await flag(factory, drill, ours)
    await flag(factory, other, [theirs])

    async with read_scope(factory) as session:
        day = await window_stats(session, now=NOW, window=DAY, label="Last 24 hours")
        week = await window_stats(session, now=NOW, window=7 * DAY, label="Last 7 days")
        # Each list holds the users' turns of its kind, and no drill's.
        assert await _ids(session, TurnFilter()) == [users["haiku"]]
        assert await _ids(session, TurnFilter(kind=ListKind.FAILED)) == [users["failed"]]
        assert await _ids(session, TurnFilter(kind=ListKind.BOTH)) == [
            users["haiku"],
            users["failed"],
        ]
        assert await _ids(session, TurnFilter(kind=ListKind.QUEUED)) == [users["queued"]]
        assert await _ids(session, TurnFilter(kind=ListKind.DELAYED)) == []
        assert await _ids(session, TurnFilter(tier="openai")) == []
        assert await _ids(session, TurnFilter(reason="timeout")) == []  # only drills' timed out
        exported = [r.id for r in await turns_for_export(session, TurnFilter())]
        # The drill list: every status, newest first, each row with its drill.
        drill_page = await problem_turns(session, TurnFilter(kind=ListKind.DRILL))
        one_drill = await _ids(session, TurnFilter(kind=ListKind.DRILL, drill_id=drill))
        its_degraded = await _ids(session, TurnFilter(drill_id=drill))
        its_failed = await _ids(session, TurnFilter(kind=ListKind.FAILED, drill_id=drill))
        hourly = await tier_mix(session, now=NOW, window=DAY, bucket=timedelta(hours=1))
        daily = await tier_mix(session, now=NOW, window=7 * DAY, bucket=DAY)
        tiers = await known_tiers(session)
        queue = await queue_summary(session)

    assert (day.turns, day.degraded, day.failed, day.queued) == (3, 1, 1, 1)
    assert day.per_tier == (("sonnet", 1), ("haiku", 1))
    assert day.degraded_share == 1 / 3
    assert (day.drill_turns, week.drill_turns) == (6, 7)
    assert (week.turns, week.degraded) == (3, 1)

    assert exported == [users["haiku"]]
    assert [r.id for r in drill_page.rows] == [*reversed(ours), theirs]
    assert [r.drill_id for r in drill_page.rows] == [drill] * 6 + [other]
    assert one_drill == list(reversed(ours))
    assert its_degraded == [ours[2], ours[1], ours[0]]
    assert its_failed == [ours[3]]

    assert hourly.series == ("sonnet", "haiku", "failed")  # openai answered only a drill
    assert sum(b.total for b in hourly.buckets) == 3
    assert sum(b.total for b in daily.buckets) == 3
    assert tiers == ("sonnet", "haiku")
    assert (queue.depth, queue.drill_jobs) == (1, 1)
    assert queue.oldest_queued_at == NOW - MINUTE  # the drill's job is older, and not counted
    assert queue.backends == (("anthropic_batch", 1),)


@BACKENDS
async def test_drills_newest_first_with_their_state_and_duration(factory: Factory) -> None:
    passed = await add_drill(factory, started_at=NOW - 100 * DAY, lasted=4 * MINUTE)
    failed = await add_drill(
        factory, started_at=NOW - 10 * DAY, verdict="fail", instance_wide=True, scenario="all-down"
    )
    expired = await add_drill(factory, started_at=NOW - 3 * 60 * MINUTE, lasted=None)
    running = await add_drill(factory, started_at=NOW - 10 * MINUTE, lasted=None)
    unknown = await add_drill(factory, started_at=NOW - 20 * DAY, verdict="maybe")
    async with read_scope(factory) as session:
        listed = await drills(session)
        first_two = await drills(session, limit=2)
    assert [d.id for d in listed.drills] == [running, expired, failed, unknown, passed]
    assert listed.total == 5 and first_two.total == 5
    assert [d.id for d in first_two.drills] == [running, expired]
    by_id = {d.id: d for d in listed.drills}
    assert [by_id[i].state(NOW) for i in (running, expired, failed, unknown, passed)] == [
        DrillState.RUNNING,
        DrillState.EXPIRED,
        DrillState.FAIL,
        DrillState.ERROR,  # a verdict nobody knows is no pass
        DrillState.PASS,
    ]
    assert by_id[running].duration(NOW) == 10 * MINUTE  # so far
    assert by_id[expired].duration(NOW) == 60 * MINUTE  # until its faults stopped
    assert by_id[passed].duration(NOW) == 4 * MINUTE
    assert by_id[failed].instance_wide and not by_id[passed].instance_wide
    assert by_id[failed].scenario == "all-down"
    assert by_id[passed].has_report and not by_id[running].has_report


@BACKENDS
async def test_a_drill_is_overdue_without_a_pass_in_90_days(factory: Factory) -> None:
    async with read_scope(factory) as session:
        nothing = await standing(session)
    assert (nothing.last, nothing.last_pass) == (None, None)
    assert nothing.overdue(NOW)

    started = NOW - 100 * DAY
    passed = await add_drill(factory, started_at=started, lasted=10 * MINUTE)
    passed_at = started + 10 * MINUTE  # a drill passes when it ends
    failed = await add_drill(factory, started_at=NOW - 5 * DAY, verdict="fail")
    async with read_scope(factory) as session:
        now = await standing(session)
    assert now.last is not None and now.last.id == failed  # the last drill, whatever its verdict
    assert now.last_pass is not None and now.last_pass.id == passed
    assert now.passed_at == passed_at
    assert now.overdue(NOW)  # a failing drill does not make up for it
    assert not now.overdue(passed_at + OVERDUE_AFTER)
    assert now.overdue(passed_at + OVERDUE_AFTER + timedelta(seconds=1))

    # A drill still running is the last one, but only an ended pass counts.
    running = await add_drill(factory, started_at=NOW - MINUTE, lasted=None)
    await add_drill(factory, started_at=NOW - 2 * DAY, verdict="aborted")
    async with read_scope(factory) as session:
        later = await standing(session)
    assert later.last is not None and later.last.id == running
    assert later.last_pass is not None and later.last_pass.id == passed
    assert later.overdue(NOW)


@BACKENDS
async def test_one_drill_with_its_faults_and_reports(factory: Factory) -> None:
    slow = await add_drill(
        factory,
        started_at=NOW - DAY,
        scenario="primary-slow",
        faults=[{"tier": "sonnet", "kind": "slow", "delay_s": 5}],
        markdown="# Slow",
        report={"verdict": "pass", "scenario": "primary-slow"},
    )
    garbled = await add_drill(factory, started_at=NOW - DAY, faults="not json")
    async with read_scope(factory) as session:
        found = await drill_report(session, slow)
        odd = await drill_report(session, garbled)
        missing = await drill_report(session, "0" * 32)
    assert found is not None and odd is not None and missing is None
    assert [str(f) for f in found.drill.faults] == ["sonnet: slow (delay_s 5)"]
    assert found.markdown == "# Slow"
    assert found.report == '{"verdict": "pass", "scenario": "primary-slow"}'
    assert [str(f) for f in odd.drill.faults] == ["?: not json"]  # shown, not a broken page
