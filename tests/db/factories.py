"""Finished turns of every kind, made through the real turn log API."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from web.db.models import Turn
from web.db.session import session_scope
from web.db.turnlog import record_outcome, start_turn
from web.events import AttemptRecord, Completed, Exhausted, TierInfo
from web.providers.base import ErrorKind

from .conftest import HAIKU, OPENAI, SONNET, add_user_message

Factory = async_sessionmaker[AsyncSession]
NOW = datetime.now(UTC)


def _ok(tier: TierInfo, n: int) -> AttemptRecord:
    return AttemptRecord(tier, n, time.time(), 0.5, 0.1, "ok")


def _fail(tier: TierInfo, n: int, kind: ErrorKind, status: int | None) -> AttemptRecord:
    return AttemptRecord(tier, n, time.time(), 0.1, None, "failed", kind, kind.phrase, status)


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
    first = _fail(SONNET, 1, why, 529)
    if kind == "ok":
        done = Completed(SONNET, "Hello.", 3, 4, 0.1, 0.5, (_ok(SONNET, 1),))
        await record_outcome(factory, turn_id, status="ok", text="Hello.", completed=done)
    elif kind in ("haiku", "haiku_retried"):
        records = (first, _ok(HAIKU, 2))
        if kind == "haiku_retried":
            records = (first, _fail(SONNET, 2, why, 529), _ok(HAIKU, 3))
        done = Completed(HAIKU, "Hey.", 3, 4, 0.3, 0.6, records, "Haiku answered.")
        await record_outcome(factory, turn_id, status="degraded", text="Hey.", completed=done)
    elif kind == "openai":
        records = (first, _fail(HAIKU, 2, ErrorKind.TIMEOUT, None), _ok(OPENAI, 3))
        done = Completed(OPENAI, "Yo.", 3, 4, 1.3, 1.6, records, "GPT-5.5 answered.")
        await record_outcome(factory, turn_id, status="degraded", text="Yo.", completed=done)
    elif kind == "failed":
        records = (first, _fail(HAIKU, 2, ErrorKind.TIMEOUT, None), _fail(OPENAI, 3, why, 500))
        gone = Exhausted("No model could answer.", records, 2.0)
        await record_outcome(factory, turn_id, status="failed", text="", exhausted=gone)
    elif kind in ("stopped_primary", "stopped_haiku"):
        tier = SONNET if kind == "stopped_primary" else HAIKU
        records = (AttemptRecord(tier, 1, time.time(), 0.2, 0.1, "cancelled"),)
        if tier is HAIKU:
            records = (first, AttemptRecord(HAIKU, 2, time.time(), 0.2, 0.1, "cancelled"))
        await record_outcome(
            factory, turn_id, status="stopped", text="Part", attempts=records, tier=tier
        )
    elif kind == "interrupted":
        await record_outcome(factory, turn_id, status="interrupted", text="")
    else:
        assert kind == "pending"
    async with session_scope(factory) as session:
        await session.execute(update(Turn).where(Turn.id == turn_id).values(started_at=NOW - ago))
    return turn_id
