from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from web.db.admin_queries import (
    ListKind,
    TurnFilter,
    known_tiers,
    problem_turns,
    turn_detail,
    turns_for_export,
    window_stats,
)
from web.db.session import read_scope
from web.providers.base import ErrorKind
from web.wording import degraded_reason

from support.database import BACKENDS
from support.factories import NOW, turn
from support.outcomes import HAIKU, OPENAI, SONNET
from support.outcomes import failed as failed_attempt

Factory = async_sessionmaker[AsyncSession]


@BACKENDS
async def test_lists_hold_degraded_and_failed_turns_never_primary_ones(factory: Factory) -> None:
    ids = {
        kind: await turn(factory, kind, ago=timedelta(minutes=60 - i))
        for i, kind in enumerate(
            [
                "ok",
                "haiku",
                "openai",
                "failed",
                "stopped_primary",
                "stopped_haiku",
                "interrupted",
                "pending",
            ]
        )
    }
    async with read_scope(factory) as session:
        degraded = await problem_turns(session, TurnFilter())
        failed = await problem_turns(session, TurnFilter(kind=ListKind.FAILED))
        both = await problem_turns(session, TurnFilter(kind=ListKind.BOTH))
    # Newest first.
    assert [r.id for r in degraded.rows] == [ids["stopped_haiku"], ids["openai"], ids["haiku"]]
    assert [r.id for r in failed.rows] == [ids["failed"]]
    assert {r.id for r in both.rows} == {
        ids["stopped_haiku"],
        ids["openai"],
        ids["haiku"],
        ids["failed"],
    }
    assert all(r.tier_index != 0 for r in both.rows)
    openai = next(r for r in degraded.rows if r.id == ids["openai"])
    assert openai.why == "sonnet: overloaded 529; haiku: timeout"
    assert [a.seq for a in openai.attempts] == [1, 2, 3]
    assert (openai.tier, openai.attempt_count, openai.degraded_reason) == (
        "openai",
        3,
        degraded_reason(
            OPENAI,
            [
                failed_attempt(SONNET, 1, ErrorKind.OVERLOADED, 529),
                failed_attempt(HAIKU, 2, ErrorKind.TIMEOUT, None),
            ],
        ),
    )


@BACKENDS
async def test_filters_by_tier_reason_and_time(factory: Factory) -> None:
    old_haiku = await turn(factory, "haiku", ago=timedelta(days=3))
    new_haiku = await turn(factory, "haiku", ago=timedelta(hours=1), why=ErrorKind.RATE_LIMITED)
    new_openai = await turn(factory, "openai", ago=timedelta(hours=2))
    async with read_scope(factory) as session:

        async def ids(**kw: object) -> list[str]:
            page = await problem_turns(session, TurnFilter(**kw))  # type: ignore[arg-type]
            return [r.id for r in page.rows]

        assert await ids(tier="haiku") == [new_haiku, old_haiku]
        assert await ids(tier="openai") == [new_openai]
        assert await ids(tier="sonnet") == []
        assert await ids(reason="rate_limited") == [new_haiku]
        assert await ids(reason="timeout") == [new_openai]  # haiku timed out before openai
        assert await ids(since=NOW - timedelta(days=1)) == [new_haiku, new_openai]
        assert await ids(until=NOW - timedelta(days=1)) == [old_haiku]
        assert await ids(tier="haiku", since=NOW - timedelta(days=1)) == [new_haiku]
        assert await known_tiers(session) == ("haiku", "openai")


@BACKENDS
async def test_pagination(factory: Factory) -> None:
    ids = [await turn(factory, "haiku", ago=timedelta(minutes=i)) for i in range(7)]
    await turn(factory, "ok")
    async with read_scope(factory) as session:
        pages = [await problem_turns(session, TurnFilter(), page=p, per_page=3) for p in (1, 2, 3)]
        beyond = await problem_turns(session, TurnFilter(), page=99, per_page=3)
        export = await turns_for_export(session, TurnFilter())
    assert [p.total for p in pages] == [7, 7, 7] and pages[0].pages == 3
    assert [len(p.rows) for p in pages] == [3, 3, 1]
    assert [r.id for p in pages for r in p.rows] == ids  # newest (0 minutes ago) first
    assert (pages[0].has_prev, pages[0].has_next, pages[2].has_next) == (False, True, False)
    assert beyond.page == 3 and [r.id for r in beyond.rows] == ids[6:]
    assert [r.id for r in export] == ids


@BACKENDS
async def test_window_stats(factory: Factory) -> None:
    for kind, ago in [
        ("ok", timedelta(hours=1)),
        ("ok", timedelta(hours=2)),
        ("haiku", timedelta(hours=3)),
        ("failed", timedelta(hours=4)),
        ("openai", timedelta(days=2)),
        ("ok", timedelta(days=3)),
        ("haiku", timedelta(days=10)),
        ("pending", timedelta(minutes=1)),
    ]:
        await turn(factory, kind, ago=ago)
    async with read_scope(factory) as session:
        day = await window_stats(session, now=NOW, window=timedelta(days=1), label="24 h")
        week = await window_stats(session, now=NOW, window=timedelta(days=7), label="7 days")
    assert (day.turns, day.degraded, day.failed, day.live) == (4, 1, 1, 1)
    assert day.per_tier == (("sonnet", 2), ("haiku", 1))
    assert day.degraded_share == 0.25
    assert (week.turns, week.degraded, week.failed) == (6, 2, 1)
    assert week.per_tier == (("sonnet", 3), ("haiku", 1), ("openai", 1))


@BACKENDS
async def test_turn_detail_shows_the_conversation_and_every_attempt(factory: Factory) -> None:
    turn_id = await turn(factory, "openai", prompt="Tell me a story")
    async with read_scope(factory) as session:
        detail = await turn_detail(session, turn_id)
        missing = await turn_detail(session, "0" * 32)
    assert missing is None
    assert detail is not None
    assert [(m.role, m.content) for m in detail.messages] == [
        ("user", "Tell me a story"),
        ("assistant", "Yo."),
    ]
    assert detail.user_message_id == detail.messages[0].id
    assert detail.messages[1].turn_id == turn_id
    assert [(a.seq, a.tier, a.outcome) for a in detail.turn.attempts] == [
        (1, "sonnet", "failed"),
        (2, "haiku", "failed"),
        (3, "openai", "ok"),
    ]
    assert detail.conversation_title == "Test chat"
