"""Which turn is a message's reply once "Ask Sonnet again" is in play (web.db.exchanges through
web.db.chat), on SQLite and PostgreSQL: on the page and in the history later turns send."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from web.db import chat
from web.db.models import Turn
from web.db.session import read_scope
from web.db.turnlog import record_outcome
from web.errors import NotFound
from web.outcome import TurnOutcome
from web.providers.base import ChatMessage, ErrorKind
from web.status import TurnStatus

from support.database import BACKENDS
from support.outcomes import (
    HAIKU,
    SONNET,
    answer,
    cancelled,
    failed,
    interrupted,
    no_answer,
    ok,
    stopped,
)

pytestmark = BACKENDS

Factory = async_sessionmaker[AsyncSession]
ALICE, BOB = "a" * 64, "b" * 64
FAST = answer(HAIKU, "fast answer", (failed(SONNET, 1, ErrorKind.OVERLOADED, 529), ok(HAIKU, 2)))
"""A fast-mode reply: Sonnet was overloaded, Haiku answered."""
PRIMARY = answer(SONNET, "primary answer", (ok(SONNET, 1),))


async def _degraded(factory: Factory, text: str = "one") -> tuple[str, int, str]:
    """A conversation whose first message got a fast-mode reply: (conversation, message, turn)."""
    start = await chat.start_conversation(factory, ALICE, text)
    await record_outcome(factory, start.turn_id, FAST)
    return start.conversation_id, start.user_message_id, start.turn_id


async def _upgrade(factory: Factory, conversation: str, turn: str, outcome: TurnOutcome) -> str:
    new = await chat.upgrade(factory, ALICE, conversation, turn)
    await record_outcome(factory, new.turn_id, outcome)
    return new.turn_id


async def _next_history(factory: Factory, conversation: str) -> tuple[ChatMessage, ...]:
    """What the next message's turn sends."""
    return (await chat.add_user_message(factory, ALICE, conversation, "two")).history


async def test_an_answered_upgrade_is_the_reply_and_the_earlier_one_is_kept_beside_it(
    factory: Factory,
) -> None:
    conversation, message, degraded = await _degraded(factory)
    new = await chat.upgrade(factory, ALICE, conversation, degraded)
    assert (new.user_message_id, new.upgrade_of) == (message, degraded)
    assert new.history == (ChatMessage("user", "one"),)  # the same request as the degraded turn
    [running] = await chat.load_exchanges(factory, ALICE, conversation)
    # While it runs it takes the place (its stream is what the page shows).
    assert running.turn is not None and running.turn.id == new.turn_id
    assert running.upgrade is not None and not running.upgrade.kept
    assert running.upgrade.earlier.id == degraded

    await record_outcome(factory, new.turn_id, PRIMARY)
    [exchange] = await chat.load_exchanges(factory, ALICE, conversation)
    assert exchange.turn is not None and exchange.turn.id == new.turn_id
    assert exchange.reply is not None and exchange.reply.content == "primary answer"
    assert exchange.upgrade is not None and not exchange.upgrade.kept
    assert exchange.upgrade.turn.id == new.turn_id
    assert exchange.upgrade.earlier.id == degraded
    assert exchange.upgrade.earlier_reply is not None
    assert exchange.upgrade.earlier_reply.content == "fast answer"
    assert exchange.last
    async with read_scope(factory) as session:  # both stay in the log, as separate turns
        rows = (await session.execute(select(Turn.id, Turn.upgrade_of, Turn.status))).all()
    assert sorted(rows) == sorted(
        [(degraded, None, TurnStatus.DEGRADED), (new.turn_id, degraded, TurnStatus.OK)]
    )
    assert (await _next_history(factory, conversation))[1] == ChatMessage(
        "assistant", "primary answer"
    )


@pytest.mark.parametrize(
    ("outcome", "failure"),
    [
        (
            no_answer("No model could answer.", (failed(SONNET, 1, ErrorKind.TIMEOUT, None),)),
            ErrorKind.TIMEOUT,
        ),
        (stopped("half an ans", SONNET, (cancelled(SONNET, 1),)), None),
        (interrupted("half an ans", SONNET, ()), None),
    ],
    ids=["failed", "stopped", "interrupted"],
)
async def test_an_upgrade_that_did_not_answer_leaves_the_earlier_reply_as_the_reply(
    factory: Factory, outcome: TurnOutcome, failure: ErrorKind | None
) -> None:
    conversation, _, degraded = await _degraded(factory)
    upgrade = await _upgrade(factory, conversation, degraded, outcome)
    [exchange] = await chat.load_exchanges(factory, ALICE, conversation)
    assert exchange.turn is not None and exchange.turn.id == degraded
    assert exchange.reply is not None and exchange.reply.content == "fast answer"
    assert exchange.upgrade is not None and exchange.upgrade.kept
    assert exchange.upgrade.turn.id == upgrade
    assert exchange.upgrade.failure == failure  # what the log says Sonnet ran into
    one = await chat.load_exchange(factory, ALICE, conversation, turn_id=upgrade)
    assert one is not None and one.turn is not None and one.upgrade is not None
    assert (one.turn.id, one.upgrade.turn.id, one.upgrade.failure) == (degraded, upgrade, failure)
    # The next turn is sent the kept reply, never the upgrade's partial text.
    assert await _next_history(factory, conversation) == (
        ChatMessage("user", "one"),
        ChatMessage("assistant", "fast answer"),
        ChatMessage("user", "two"),
    )


async def test_a_second_upgrade_and_a_regenerate_after_a_failed_one(factory: Factory) -> None:
    conversation, message, degraded = await _degraded(factory)
    down = no_answer("No model could answer.", (failed(SONNET, 1, ErrorKind.OVERLOADED, 529),))
    await _upgrade(factory, conversation, degraded, down)
    second = await _upgrade(factory, conversation, degraded, PRIMARY)  # pressed again: it works
    [exchange] = await chat.load_exchanges(factory, ALICE, conversation)
    assert exchange.turn is not None and exchange.turn.id == second
    assert exchange.upgrade is not None and exchange.upgrade.earlier.id == degraded
    regenerated = await chat.regenerate(factory, ALICE, conversation, message)
    await record_outcome(factory, regenerated.turn_id, FAST)
    [exchange] = await chat.load_exchanges(factory, ALICE, conversation)
    # A regenerate is not an upgrade: the latest turn, with nothing beside it.
    assert exchange.turn is not None and exchange.turn.id == regenerated.turn_id
    assert exchange.upgrade is None


async def test_load_exchange_finds_the_latest_and_a_turns_own(factory: Factory) -> None:
    conversation, first_message, first_turn = await _degraded(factory)
    second = await chat.add_user_message(factory, ALICE, conversation, "two")
    latest = await chat.load_exchange(factory, ALICE, conversation)
    assert latest is not None and latest.last
    assert (latest.user.id, latest.turn and latest.turn.id) == (
        second.user_message_id,
        second.turn_id,
    )
    earlier = await chat.load_exchange(factory, ALICE, conversation, turn_id=first_turn)
    assert earlier is not None and not earlier.last and earlier.user.id == first_message
    assert [e.last for e in await chat.load_exchanges(factory, ALICE, conversation)] == [
        False,
        True,
    ]


async def test_upgrades_check_ownership_and_the_turn(factory: Factory) -> None:
    conversation, _, degraded = await _degraded(factory)
    other = (await chat.start_conversation(factory, ALICE, "elsewhere")).conversation_id
    for call in (
        chat.upgrade(factory, BOB, conversation, degraded),
        chat.upgrade(factory, ALICE, conversation, "0" * 32),
        chat.upgrade(factory, ALICE, other, degraded),  # a turn of another conversation
        chat.load_exchange(factory, BOB, conversation),
        chat.load_exchange(factory, ALICE, conversation, turn_id="0" * 32),
    ):
        with pytest.raises(NotFound):
            await call
    async with read_scope(factory) as session:
        assert await session.scalar(select(func.count()).select_from(Turn)) == 2
