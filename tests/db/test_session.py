from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from web.db.models import Turn
from web.db.session import read_scope

from support.database import add_user_message, start_turn

Factory = async_sessionmaker[AsyncSession]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_reads_do_not_wait_for_a_writer_on_sqlite(factory: Factory) -> None:
    conversation_id, message_id = await add_user_message(factory)
    await start_turn(factory, conversation_id=conversation_id, user_message_id=message_id)
    async with factory() as writer:
        await writer.execute(select(Turn.id))  # BEGIN IMMEDIATE: holds the write lock
        async with read_scope(factory) as reader:
            count = await asyncio.wait_for(reader.scalar(select(Turn.id)), timeout=1.0)
        assert count is not None
        await writer.rollback()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_second_writer_waits_for_the_first_on_sqlite(factory: Factory) -> None:
    async with factory() as writer:
        await writer.execute(select(Turn.id))  # BEGIN IMMEDIATE
        pending = asyncio.ensure_future(add_user_message(factory))
        done, _ = await asyncio.wait({pending}, timeout=0.3)
        assert not done, "a second write transaction started while the first held the lock"
        await writer.rollback()
    await asyncio.wait_for(pending, timeout=5)
