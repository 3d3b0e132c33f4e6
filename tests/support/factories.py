"""Finished turns of every kind, made through the real turn log API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from web.db.models import Turn
from web.db.session import session_scope
from web.db.turnlog import record_outcome
from web.providers.base import ErrorKind

from .database import add_user_message, start_turn
from .outcomes import (
    HAIKU,
    OPENAI,
    SONNET,
    answer,
    cancelled,
    failed,
    interrupted,
    no_answer,
    ok,
    stopped,
)

Factory = async_sessionmaker[AsyncSession]
NOW = datetime.now(UTC)


async def turn(
    factory: Factory,
    kind: str,
    *,
    ago: timedelta = timedelta(minutes=5),
    why: ErrorKind = ErrorKind.OVERLOADED,
    prompt: str = "Hi",
) -> str:
    """A finished turn of ``kind`` (ok, haiku, openai, failed, stopped_primary, stopped_haiku,
    interrupted, pending) that started ``ago`` before NOW."""
    conversation_id, message_id = await add_user_message(factory, prompt)
    turn_id, _ = await start_turn(
        factory, conversation_id=conversation_id, user_message_id=message_id
    )
    first = failed(SONNET, 1, why, 529)
    if kind == "ok":
        await record_outcome(factory, turn_id, answer(SONNET, "Hello.", (ok(SONNET, 1),)))
    elif kind in ("haiku", "haiku_retried"):
        records = (first, ok(HAIKU, 2))
        if kind == "haiku_retried":
            records = (first, failed(SONNET, 2, why, 529), ok(HAIKU, 3))
        outcome = answer(HAIKU, "Hey.", records, ttft=0.3, total=0.6)
        await record_outcome(factory, turn_id, outcome)
    elif kind == "openai":
        records = (first, failed(HAIKU, 2, ErrorKind.TIMEOUT, None), ok(OPENAI, 3))
        outcome = answer(OPENAI, "Yo.", records, ttft=1.3, total=1.6)
        await record_outcome(factory, turn_id, outcome)
    elif kind == "failed":
        records = (first, failed(HAIKU, 2, ErrorKind.TIMEOUT, None), failed(OPENAI, 3, why, 500))
        await record_outcome(factory, turn_id, no_answer("No model could answer.", records))
    elif kind in ("stopped_primary", "stopped_haiku"):
        tier = SONNET if kind == "stopped_primary" else HAIKU
        records = (cancelled(tier, 1),)
        if tier is HAIKU:
            records = (first, cancelled(HAIKU, 2))
        await record_outcome(factory, turn_id, stopped("Part", tier, records))
    elif kind == "interrupted":
        await record_outcome(factory, turn_id, interrupted("", None, ()))
    else:
        assert kind == "pending"
    async with session_scope(factory) as session:
        await session.execute(update(Turn).where(Turn.id == turn_id).values(started_at=NOW - ago))
    return turn_id
