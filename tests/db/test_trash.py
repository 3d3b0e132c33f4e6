"""web.db.trash on SQLite and PostgreSQL: a deleted conversation is hidden, restorable within its
time, and purged with everything it holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from web.db import chat, sidebar, trash
from web.db.models import Attempt, Conversation, Message, Turn
from web.db.session import Factory, read_scope
from web.db.turnlog import record_outcome
from web.errors import NotFound

from support.database import BACKENDS
from support.outcomes import SONNET, answer, ok

pytestmark = BACKENDS

ALICE, BOB = "a" * 64, "b" * 64
T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


async def _count(factory: Factory) -> dict[str, int]:
    async with read_scope(factory) as session:
        return {
            model.__tablename__: await session.scalar(select(func.count()).select_from(model)) or 0
            for model in (Conversation, Message, Turn, Attempt)
        }


async def _answered(factory: Factory, owner: str = ALICE, text: str = "hello") -> str:
    new = await chat.start_conversation(factory, owner, text)
    await record_outcome(factory, new.turn_id, answer(SONNET, "hi", (ok(SONNET, 1),)))
    return new.conversation_id


async def test_deleted_is_hidden_everywhere_and_restore_brings_it_all_back(
    factory: Factory,
) -> None:
    conversation = await _answered(factory)
    await trash.mark_deleted(factory, ALICE, conversation, T0)
    assert await sidebar.list_conversations(factory, ALICE) == []
    for call in (
        chat.get_conversation(factory, ALICE, conversation),
        chat.load_exchanges(factory, ALICE, conversation),
        chat.add_user_message(factory, ALICE, conversation, "still there?"),
        chat.rename_conversation(factory, ALICE, conversation, "x"),
        trash.mark_deleted(factory, ALICE, conversation, T0),
    ):
        with pytest.raises(NotFound):
            await call
    found = await trash.find_deleted(factory, ALICE, conversation)
    assert found == trash.Deleted(conversation, "hello", T0)
    assert await trash.find_deleted(factory, BOB, conversation) is None
    with pytest.raises(NotFound):
        await trash.restore(factory, BOB, conversation, since=T0 - timedelta(seconds=1))
    await trash.restore(factory, ALICE, conversation, since=T0 - timedelta(seconds=1))
    [exchange] = await chat.load_exchanges(factory, ALICE, conversation)
    assert exchange.reply is not None and exchange.reply.content == "hi"
    assert await _count(factory) == {"conversations": 1, "messages": 2, "turns": 1, "attempts": 1}


async def test_restore_is_refused_for_a_delete_made_before_since(factory: Factory) -> None:
    conversation = await _answered(factory)
    await trash.mark_deleted(factory, ALICE, conversation, T0)
    with pytest.raises(NotFound, match="nothing to undo"):
        await trash.restore(factory, ALICE, conversation, since=T0)


async def test_purge_takes_everything_and_only_what_is_deleted(factory: Factory) -> None:
    kept = await _answered(factory, text="kept")
    deleted = await _answered(factory, text="deleted")
    assert not await trash.purge(factory, ALICE, kept)  # not deleted: never purged
    await trash.mark_deleted(factory, ALICE, deleted, T0)
    assert not await trash.purge(factory, BOB, deleted)  # not the owner's
    assert await trash.purge(factory, ALICE, deleted)
    assert await _count(factory) == {"conversations": 1, "messages": 2, "turns": 1, "attempts": 1}
    assert [c.id for c in await sidebar.list_conversations(factory, ALICE)] == [kept]


async def test_the_sweep_purges_every_session_up_to_its_cutoff(factory: Factory) -> None:
    early, late = await _answered(factory, ALICE), await _answered(factory, BOB)
    assert await trash.oldest_deletion(factory) is None
    await trash.mark_deleted(factory, ALICE, early, T0)
    await trash.mark_deleted(factory, BOB, late, T0 + timedelta(seconds=30))
    assert await trash.oldest_deletion(factory) == T0
    assert await trash.purge_deleted_before(factory, T0 - timedelta(seconds=1)) == 0
    assert await trash.purge_deleted_before(factory, T0) == 1
    assert await trash.oldest_deletion(factory) == T0 + timedelta(seconds=30)
    assert await trash.find_deleted(factory, BOB, late) is not None
