"""The runner at the edges of a turn, with a scripted chain and a real database."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from web.chain import TurnControl
from web.db.models import Message, Turn
from web.db.session import read_scope
from web.events import AttemptRecord, ChainEvent, Completed, TextDelta, TierStarted
from web.live import Subscription
from web.providers.base import ChatMessage, ChatRequest
from web.runner import TurnJob, TurnRunner
from web.status import AttemptOutcome

from support.database import BACKENDS, add_user_message, start_turn
from support.outcomes import SONNET

Factory = async_sessionmaker[AsyncSession]


class SlowToCloseChain:
    """Completes a reply, then takes its time closing (as an SDK stream closing a connection)."""

    def __init__(self) -> None:
        self.closing = asyncio.Event()

    async def run(
        self,
        request: ChatRequest,
        *,
        on_attempt: Callable[[AttemptRecord], None] | None = None,
        control: TurnControl | None = None,
        primary_only: bool = False,
        drill: object = None,
    ) -> AsyncGenerator[ChainEvent, None]:
        assert on_attempt is not None
        try:
            yield TierStarted(SONNET, 1)
            yield TextDelta("The whole ")
            yield TextDelta("reply.")
            on_attempt(AttemptRecord(SONNET, 1, time.time(), 0.2, 0.1, AttemptOutcome.OK))
            yield Completed(SONNET, "The whole reply.", 3, 3, 0.1, 0.2)
        finally:
            self.closing.set()
            await asyncio.sleep(5)


@BACKENDS
async def test_stop_during_the_close_of_a_completed_reply_keeps_it_whole(factory: Factory) -> None:
    conversation_id, message_id = await add_user_message(factory)
    turn_id, _ = await start_turn(
        factory, conversation_id=conversation_id, user_message_id=message_id
    )
    chain = SlowToCloseChain()
    runner = TurnRunner(chain, factory, deadline_s=10.0)
    request = ChatRequest(messages=(ChatMessage("user", "Hello?"),))
    runner.start(TurnJob(turn_id, conversation_id, request))
    await asyncio.wait_for(chain.closing.wait(), 5)
    await asyncio.wait_for(runner.stop(turn_id), 5)
    await runner.shutdown()
    async with read_scope(factory) as session:
        turn = await session.scalar(select(Turn).where(Turn.id == turn_id))
        reply = await session.scalar(select(Message).where(Message.turn_id == turn_id))
    assert turn is not None and reply is not None
    assert (turn.status, turn.tier, reply.content) == ("ok", "sonnet", "The whole reply.")


class RecordingChain:
    """Answers at once, and remembers which tiers each turn was allowed."""

    def __init__(self) -> None:
        self.primary_only: list[bool] = []

    async def run(
        self,
        request: ChatRequest,
        *,
        on_attempt: Callable[[AttemptRecord], None] | None = None,
        control: TurnControl | None = None,
        primary_only: bool = False,
        drill: object = None,
    ) -> AsyncGenerator[ChainEvent, None]:
        assert on_attempt is not None
        self.primary_only.append(primary_only)
        yield TierStarted(SONNET, 1)
        yield TextDelta("Again.")
        on_attempt(AttemptRecord(SONNET, 1, time.time(), 0.2, 0.1, AttemptOutcome.OK))
        yield Completed(SONNET, "Again.", 3, 1, 0.1, 0.2)


@BACKENDS
async def test_an_upgrade_job_runs_on_the_primary_only(factory: Factory) -> None:
    conversation_id, message_id = await add_user_message(factory)
    chain = RecordingChain()
    runner = TurnRunner(chain, factory, deadline_s=10.0)
    request = ChatRequest(messages=(ChatMessage("user", "Hello?"),))
    for upgrade_of in (None, "0" * 32):
        turn_id, _ = await start_turn(
            factory, conversation_id=conversation_id, user_message_id=message_id
        )
        live = runner.start(TurnJob(turn_id, conversation_id, request, upgrade_of=upgrade_of))
        assert live.upgrade_of == upgrade_of  # the page shows an upgrade's end differently
        subscription = runner.live_turns.subscribe(turn_id)
        assert subscription is not None and subscription.turn.upgrade_of == upgrade_of
        await asyncio.wait_for(_until_finished(subscription), 5)
    await runner.shutdown()
    assert chain.primary_only == [False, True]


async def _until_finished(subscription: Subscription) -> None:
    async for _ in subscription.updates:  # ends with the turn's Finished
        pass
