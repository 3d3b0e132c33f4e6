"""The conversation "busy" check in the database: one live reply per conversation, whichever
process runs it. Two concurrent calls, each on its own engine (as two processes would be), open
exactly one turn; a live turn of a dead process holds nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from web.db import chat
from web.db.models import Process, Turn, utcnow
from web.db.session import make_engine, make_sessionmaker, read_scope, session_scope
from web.db.turnlog import record_outcome
from web.errors import Conflict
from web.status import LIVE_STATUSES
from web.wording import REGENERATE_BUSY, REPLY_BUSY, UPGRADE_BUSY

from support.database import BACKENDS
from support.outcomes import HAIKU, answer, ok

Factory = async_sessionmaker[AsyncSession]
OWNER = "a" * 64
ALIVE, DEAD = "alive" + "0" * 27, "dead" + "0" * 28
ROUNDS = 8
"""Races per test: two calls at once do not always overlap, so one round could pass without a
lock; correct code passes every round whatever the timing."""


@pytest.fixture
async def two(database_url: str) -> AsyncIterator[tuple[Factory, Factory]]:
    """Two session factories on two engines: two processes' connections to one database."""
    engines = [make_engine(database_url), make_engine(database_url)]
    try:
        first, second = (make_sessionmaker(e) for e in engines)
        now = utcnow()
        async with session_scope(first) as session:
            for process_id, until in ((ALIVE, now + timedelta(hours=1)), (DEAD, now)):
                session.add(
                    Process(id=process_id, host="h", pid=1, started_at=now, lease_until=until)
                )
        yield first, second
    finally:
        for engine in engines:
            await engine.dispose()


async def live_turns(factory: Factory, conversation_id: str) -> int:
    async with read_scope(factory) as session:
        count = await session.scalar(
            select(func.count())
            .select_from(Turn)
            .where(Turn.conversation_id == conversation_id, Turn.status.in_(LIVE_STATUSES))
        )
        return int(count or 0)


async def race(*calls: Awaitable[object]) -> list[str]:
    """Run the calls at once; the refusals' messages (one per refused call)."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    refused = []
    for result in results:
        if isinstance(result, Conflict):
            refused.append(result.message)
        elif isinstance(result, BaseException):
            raise result
    return refused


async def answered_conversation(factory: Factory) -> chat.NewTurn:
    """A conversation whose first reply was written by a fallback tier, and is final."""
    first = await chat.start_conversation(factory, OWNER, "Hello?", process_id=ALIVE)
    await record_outcome(factory, first.turn_id, answer(HAIKU, "Hi.", (ok(HAIKU, 1),)))
    return first


@BACKENDS
async def test_two_processes_sending_at_once_open_one_turn(two: tuple[Factory, Factory]) -> None:
    first, second = two
    for _ in range(ROUNDS):
        conversation = (await answered_conversation(first)).conversation_id
        refused = await race(
            chat.add_user_message(first, OWNER, conversation, "one", process_id=ALIVE),
            chat.add_user_message(second, OWNER, conversation, "two", process_id=ALIVE),
        )
        assert refused == [REPLY_BUSY]
        assert await live_turns(first, conversation) == 1


@BACKENDS
async def test_two_processes_regenerating_at_once_open_one_turn(
    two: tuple[Factory, Factory],
) -> None:
    first, second = two
    for _ in range(ROUNDS):
        new = await answered_conversation(first)
        conversation, message = new.conversation_id, new.user_message_id
        refused = await race(
            chat.regenerate(first, OWNER, conversation, message, process_id=ALIVE),
            chat.regenerate(second, OWNER, conversation, message, process_id=ALIVE),
        )
        assert refused == [REGENERATE_BUSY]
        assert await live_turns(first, conversation) == 1


@BACKENDS
async def test_two_processes_upgrading_at_once_open_one_turn(two: tuple[Factory, Factory]) -> None:
    first, second = two
    for _ in range(ROUNDS):
        new = await answered_conversation(first)
        conversation, turn = new.conversation_id, new.turn_id
        refused = await race(
            chat.upgrade(first, OWNER, conversation, turn, process_id=ALIVE),
            chat.upgrade(second, OWNER, conversation, turn, process_id=ALIVE),
        )
        assert refused == [UPGRADE_BUSY]
        assert await live_turns(first, conversation) == 1


@BACKENDS
async def test_a_live_turn_of_a_dead_process_holds_nothing(two: tuple[Factory, Factory]) -> None:
    first, second = two
    orphaned = await chat.start_conversation(first, OWNER, "Hello?", process_id=DEAD)
    conversation = orphaned.conversation_id
    await chat.add_user_message(second, OWNER, conversation, "still there?", process_id=ALIVE)
    with pytest.raises(Conflict) as refused:
        await chat.add_user_message(first, OWNER, conversation, "and now?", process_id=ALIVE)
    assert refused.value.message == REPLY_BUSY
