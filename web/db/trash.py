"""Deleted conversations, kept for an undo: the queries behind web.trash.

Delete only sets ``deleted_at``; every chat query then treats the conversation as gone
(web.db.chat, web.db.sidebar). Purging removes the row, and its messages, turns and attempts go
with it (ON DELETE CASCADE). Each function takes the owner hash, like web.db.chat, except the
sweep, which purges every session's expired deletions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, update

from web.db.models import Conversation
from web.db.session import Factory, read_scope, session_scope
from web.errors import CONVERSATION_NOT_FOUND, NotFound

NOTHING_TO_UNDO = (
    "There is nothing to undo: this conversation was deleted for good, or it belongs to another "
    "browser session."
)


@dataclass(frozen=True)
class Deleted:
    id: str
    title: str
    deleted_at: datetime


async def mark_deleted(factory: Factory, owner: str, conversation_id: str, at: datetime) -> None:
    async with session_scope(factory) as session:
        result = await session.execute(
            update(Conversation)
            .where(
                Conversation.id == conversation_id,
                Conversation.owner == owner,
                Conversation.deleted_at.is_(None),
            )
            .values(deleted_at=at)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise NotFound(CONVERSATION_NOT_FOUND)


async def find_deleted(factory: Factory, owner: str, conversation_id: str) -> Deleted | None:
    async with read_scope(factory) as session:
        row = (
            await session.execute(
                select(Conversation.id, Conversation.title, Conversation.deleted_at).where(
                    Conversation.id == conversation_id,
                    Conversation.owner == owner,
                    Conversation.deleted_at.is_not(None),
                )
            )
        ).first()
    if row is None or row.deleted_at is None:
        return None
    return Deleted(row.id, row.title, row.deleted_at)


async def restore(factory: Factory, owner: str, conversation_id: str, since: datetime) -> None:
    """Undo a delete made after ``since``; NotFound for anything else."""
    async with session_scope(factory) as session:
        result = await session.execute(
            update(Conversation)
            .where(
                Conversation.id == conversation_id,
                Conversation.owner == owner,
                Conversation.deleted_at > since,
            )
            .values(deleted_at=None)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise NotFound(NOTHING_TO_UNDO)


async def purge(factory: Factory, owner: str, conversation_id: str) -> bool:
    """Remove a deleted conversation for good now; False if there was none (never a live one)."""
    async with session_scope(factory) as session:
        result = await session.execute(
            delete(Conversation)
            .where(
                Conversation.id == conversation_id,
                Conversation.owner == owner,
                Conversation.deleted_at.is_not(None),
            )
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


async def purge_deleted_before(factory: Factory, cutoff: datetime) -> int:
    """Remove, for good, every conversation deleted at or before ``cutoff``."""
    async with session_scope(factory) as session:
        result = await session.execute(
            delete(Conversation)
            .where(Conversation.deleted_at <= cutoff)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]


async def oldest_deletion(factory: Factory) -> datetime | None:
    async with read_scope(factory) as session:
        oldest: datetime | None = await session.scalar(select(func.min(Conversation.deleted_at)))
        return oldest
