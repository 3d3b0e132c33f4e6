"""web.live_redis on the local Redis: two RedisLiveTurns are two processes sharing one prefix.

"a" runs the turn; "b" follows it from its stream: it rebuilds the same state, follows to the
end, and ends without a Finished (the outcome is read from the database in the app). The flush
interval is 0 so nothing waits for a timer; each wait is bounded from above only.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from test_live import CUT, HAIKU, SONNET, fallback_updates

from web.events import AttemptRecord, TextDelta, TierStarted
from web.live import Finished, LiveTurn, Subscription
from web.live_codec import Opened, decode_batch, dumps, encode
from web.live_redis import RedisLiveTurns

from support.cluster import REDIS_URL, redis_or_skip
from support.outcomes import answer

WITHIN_S = 30.0


@pytest.fixture
async def pair() -> AsyncIterator[tuple[RedisLiveTurns, RedisLiveTurns, set[str]]]:
    redis_or_skip()
    prefix = f"understudy-test-{uuid.uuid4().hex[:12]}:"
    live: set[str] = set()

    async def is_live(turn_id: str) -> bool:
        return turn_id in live

    a = RedisLiveTurns(REDIS_URL, prefix, is_live, flush_s=0)
    b = RedisLiveTurns(REDIS_URL, prefix, is_live, flush_s=0)
    try:
        yield a, b, live
    finally:
        await a.aclose()
        await b.aclose()
        client = aioredis.Redis.from_url(REDIS_URL)
        async for key in client.scan_iter(match=f"{prefix}*"):
            await client.delete(key)
        await client.aclose()


async def _until_published(b: RedisLiveTurns, turn_id: str, text: str) -> Subscription:
    async with asyncio.timeout(WITHIN_S):
        while True:
            sub = await b.follow(turn_id)
            if sub is not None and sub.turn.text == text:
                return sub
            await asyncio.sleep(0.01)


def _state(turn: LiveTurn) -> tuple[object, ...]:
    return (turn.tier, turn.text, turn.reason, tuple(turn.attempts), turn.waiting)


def test_every_update_survives_the_codec() -> None:
    updates = [u for u in fallback_updates() if not isinstance(u, Finished)]
    rich = AttemptRecord(
        SONNET, 3, 1.5, 0.2, None, CUT.outcome, CUT.error_kind, 'x\n"y"', 529, "req", 2.0
    )
    updates += [rich, TierStarted(HAIKU, 4, retry=True, started_at=9.5, next=SONNET)]
    opened = Opened("c1", 12.25, "t0")
    raw = dumps([encode(opened), *(encode(u) for u in updates)])
    assert decode_batch(raw) == [opened, *updates]


async def test_a_watcher_in_another_process_replays_then_follows_to_the_end(
    pair: tuple[RedisLiveTurns, RedisLiveTurns, set[str]],
) -> None:
    a, b, live = pair
    updates = fallback_updates()
    turn = a.open("t1", "c1")
    live.add("t1")
    for update in updates[:3]:  # Sonnet started, wrote, was cut
        a.publish("t1", update)
    sub = await _until_published(b, "t1", "Half a ")
    assert sub.turn.conversation_id == "c1"
    assert _state(sub.turn) == _state(turn)
    for update in updates[3:]:
        a.publish("t1", update)
    seen: list[object] = []
    async with asyncio.timeout(WITHIN_S):
        async for batch in sub.updates:
            for update in batch:
                sub.turn.apply(update)
            seen.extend(batch)
    # Everything after the replay, in order, and no Finished: the database has the outcome.
    assert seen == updates[3:-1]
    assert (sub.turn.tier, sub.turn.text) == (HAIKU, "Whole reply.")
    assert await b.follow("t1") is None  # ended: new watchers read the database


async def test_a_watcher_that_came_before_the_first_update_gets_them_all(
    pair: tuple[RedisLiveTurns, RedisLiveTurns, set[str]],
) -> None:
    a, b, live = pair
    live.add("t2")
    assert await b.follow("t2") is None  # nothing published yet
    sub = b.expect("t2", "c2", None)
    assert sub is not None and sub.turn.text == ""
    a.open("t2", "c2")
    a.publish("t2", TierStarted(SONNET, 1))
    a.publish("t2", TextDelta("Hello"))
    a.publish("t2", Finished(answer(SONNET, "Hello", [])))
    text: list[str] = []
    async with asyncio.timeout(WITHIN_S):
        async for batch in sub.updates:
            for update in batch:
                sub.turn.apply(update)
            text.append(sub.turn.text)
    assert text[-1] == "Hello"


async def test_a_watcher_stops_following_when_the_row_says_the_turn_ended(
    pair: tuple[RedisLiveTurns, RedisLiveTurns, set[str]],
) -> None:
    """Its process died without ending the stream; the sweep marked the row: the watcher ends."""
    a, b, live = pair
    a.open("t3", "c3")
    live.add("t3")
    a.publish("t3", TextDelta("partial"))
    sub = await _until_published(b, "t3", "partial")
    live.discard("t3")  # the row: interrupted
    async with asyncio.timeout(WITHIN_S):
        batches = [batch async for batch in sub.updates]
    assert batches == []


async def test_the_running_process_watchers_stay_local(
    pair: tuple[RedisLiveTurns, RedisLiveTurns, set[str]],
) -> None:
    a, _, live = pair
    a.open("t4", "c4")
    live.add("t4")
    sub = await a.follow("t4")
    assert sub is not None and a.get("t4") is not None
    assert a.expect("t4", "c4", None) is None


async def test_redis_down_never_fails_the_turn_and_keeps_only_running_turns() -> None:
    async def is_live(turn_id: str) -> bool:
        return True

    down = RedisLiveTurns("redis://127.0.0.1:1/0", "understudy-test-down:", is_live, flush_s=0)
    try:
        sub_turn = down.open("t5", "c5")
        local = down.subscribe("t5")
        down.publish("t5", TextDelta("still shown here"))
        down.open("t6", "c6")
        down.publish("t6", Finished(answer(SONNET, "done", [])))
        assert sub_turn.text == "still shown here" and local is not None
        assert await down.follow("t7") is None  # a read fails quietly: not live anywhere known
        async with asyncio.timeout(WITHIN_S):
            while "t6" in down._pending or "t5" not in down._pending:  # noqa: ASYNC110 (a failed write sets no event)
                await asyncio.sleep(0.01)
        assert [item["t"] for item in down._pending["t5"]] == ["o", "d"]
    finally:
        await down.aclose()
