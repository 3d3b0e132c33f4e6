"""The conversation "busy" check in the database: one live reply per conversation, whichever
process runs it. Two concurrent calls, each on its own engine (as two processes would be), open
exactly one turn; a live turn of a dead process holds nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
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


OpenTurn = Callable[[Factory, chat.NewTurn], Awaitable[object]]
"""One process's call that opens a turn in an answered conversation (or is refused)."""


async def only_one_opens(two: tuple[Factory, Factory], open_turn: OpenTurn, busy: str) -> None:
    """ROUNDS times, in a new answered conversation: both processes call ``open_turn`` at once;
    one opens a turn, the other is refused with ``busy``."""
    first, second = two
    for _ in range(ROUNDS):
        new = await answered_conversation(first)
        refused = await race(open_turn(first, new), open_turn(second, new))
        assert refused == [busy]
        assert await live_turns(first, new.conversation_id) == 1


@BACKENDS
async def test_two_processes_sending_at_once_open_one_turn(two: tuple[Factory, Factory]) -> None:
    def send(factory: Factory, new: chat.NewTurn) -> Awaitable[object]:
        return chat.add_user_message(
            factory, OWNER, new.conversation_id, "again?", process_id=ALIVE
        )

    await only_one_opens(two, send, REPLY_BUSY)


@BACKENDS
async def test_two_processes_regenerating_at_once_open_one_turn(
    two: tuple[Factory, Factory],
) -> None:
    def regenerate(factory: Factory, new: chat.NewTurn) -> Awaitable[object]:
        return chat.regenerate(
            factory, OWNER, new.conversation_id, new.user_message_id, process_id=ALIVE
        )

    await only_one_opens(two, regenerate, REGENERATE_BUSY)


@BACKENDS
async def test_two_processes_upgrading_at_once_open_one_turn(two: tuple[Factory, Factory]) -> None:
    def upgrade(factory: Factory, new: chat.NewTurn) -> Awaitable[object]:
        return chat.upgrade(factory, OWNER, new.conversation_id, new.turn_id, process_id=ALIVE)

    await only_one_opens(two, upgrade, UPGRADE_BUSY)


@BACKENDS
async def test_a_live_turn_of_a_dead_process_holds_nothing(two: tuple[Factory, Factory]) -> None:
    first, second = two
    orphaned = await chat.start_conversation(first, OWNER, "Hello?", process_id=DEAD)
    conversation = orphaned.conversation_id
    await chat.add_user_message(second, OWNER, conversation, "still there?", process_id=ALIVE)
    with pytest.raises(Conflict) as refused:
        await chat.add_user_message(first, OWNER, conversation, "and now?", process_id=ALIVE)
    assert refused.value.message == REPLY_BUSY
