"""web.db.sidebar on SQLite and PostgreSQL: each conversation's marker comes from its turns."""

from __future__ import annotations

from web.db import chat, sidebar
from web.db.session import Factory
from web.db.turnlog import record_outcome
from web.status import Activity

from support.database import BACKENDS
from support.outcomes import SONNET, answer, no_answer, ok, stopped

pytestmark = BACKENDS

ALICE, BOB = "a" * 64, "b" * 64
IDLE, WRITING, NEW = Activity.IDLE, Activity.WRITING, Activity.NEW


async def _marks(factory: Factory, owner: str = ALICE, **kwargs: object) -> dict[str, Activity]:
    page = await sidebar.conversation_page(factory, owner, **kwargs)  # type: ignore[arg-type]
    return {c.id: c.activity for c in page.rows}


async def test_writing_then_new_until_it_is_on_screen(factory: Factory) -> None:
    first = await chat.start_conversation(factory, ALICE, "hello")
    conversation = first.conversation_id
    assert await _marks(factory) == {conversation: WRITING}
    assert await _marks(factory, current=conversation) == {conversation: WRITING}
    await record_outcome(factory, first.turn_id, answer(SONNET, "hi", (ok(SONNET, 1),)))
    assert await _marks(factory) == {conversation: NEW}
    assert await _marks(factory) == {conversation: NEW}  # listing alone changes nothing
    assert await _marks(factory, current=conversation) == {conversation: IDLE}
    assert await _marks(factory) == {conversation: IDLE}  # seen, for good

    second = await chat.add_user_message(factory, ALICE, conversation, "more")
    assert await _marks(factory) == {conversation: WRITING}
    await record_outcome(factory, second.turn_id, answer(SONNET, "more", (ok(SONNET, 1),)))
    assert await _marks(factory) == {conversation: NEW}  # landed after it was last seen


async def test_a_reply_lands_whatever_its_end(factory: Factory) -> None:
    failed = await chat.start_conversation(factory, ALICE, "one")
    cut = await chat.start_conversation(factory, ALICE, "two")
    await record_outcome(factory, failed.turn_id, no_answer("No model could answer.", ()))
    await record_outcome(factory, cut.turn_id, stopped("par", SONNET, ()))
    assert await _marks(factory) == {failed.conversation_id: NEW, cut.conversation_id: NEW}


async def test_the_conversation_on_screen_is_marked_seen_even_further_down(
    factory: Factory,
) -> None:
    older = await chat.start_conversation(factory, ALICE, "older")
    newer = await chat.start_conversation(factory, ALICE, "newer")
    for new in (older, newer):
        await record_outcome(factory, new.turn_id, answer(SONNET, "x", (ok(SONNET, 1),)))
    page = await sidebar.conversation_page(factory, ALICE, limit=1, current=older.conversation_id)
    assert [c.id for c in page.rows] == [newer.conversation_id] and page.older is not None
    assert await _marks(factory) == {older.conversation_id: IDLE, newer.conversation_id: NEW}


async def test_another_sessions_conversation_is_never_marked_seen(factory: Factory) -> None:
    bobs = await chat.start_conversation(factory, BOB, "mine")
    await record_outcome(factory, bobs.turn_id, answer(SONNET, "x", (ok(SONNET, 1),)))
    assert await _marks(factory, current=bobs.conversation_id) == {}
    assert await _marks(factory, BOB) == {bobs.conversation_id: NEW}
