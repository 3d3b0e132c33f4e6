from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from web.db.logged_turns import first_messages, recent_turns, replies
from web.db.session import read_scope

from support.database import BACKENDS
from support.factories import turn

Factory = async_sessionmaker[AsyncSession]


@BACKENDS
async def test_the_prompt_and_reply_of_each_turn(factory: Factory) -> None:
    turn_id = await turn(factory, "openai", prompt="Tell me a story")
    async with read_scope(factory) as session:
        prompts = await first_messages(session, [turn_id])
        texts = await replies(session, [turn_id])
        recent = await recent_turns(session, limit=5)
    assert prompts == {turn_id: "Tell me a story"} and texts == {turn_id: "Yo."}
    assert [r.id for r in recent] == [turn_id]


@BACKENDS
async def test_a_retried_failure_is_counted_not_repeated(factory: Factory) -> None:
    await turn(factory, "haiku_retried")
    async with read_scope(factory) as session:
        [row] = await recent_turns(session, limit=5)
    assert row.why == "sonnet: overloaded 529 x2"
    assert row.failure_groups == (("sonnet: overloaded 529", 2, "overloaded"),)
    assert row.attempt_count == 3
