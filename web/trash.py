"""Delete with undo: a deleted conversation disappears at once and goes for good a little later.

Why undo rather than "Are you sure?": a confirmation asks every time for the rare mistake and is
soon clicked through without reading; an undo costs nothing when the delete was meant and saves
the conversation when it was not (Gmail's "Conversation deleted · Undo").

- Delete marks the conversation (web.db.trash); from then on every page treats it as gone. The
  route stops a reply being written in it first, as before.
- The page the user lands on offers Undo for UNDO_S seconds (templates/_undo.html, its timer in
  static/chat-chrome.js). When the offer ends, by its timer or dismissed, the browser asks for
  the purge at once: nothing can bring the conversation back any more, so it is not kept.
- Whatever the browser does (a closed tab, no JavaScript), the sweep here removes every deletion
  KEEP_S after it was made, and an undo is refused from then on. The sweep sleeps until the oldest
  deletion is due; with none, until this process deletes one or KEEP_S has passed, so an idle
  server looks once a minute.
- Every process runs the sweep (`serve --workers N`, several machines): the purge is one DELETE
  of what is due, so two at once purge each conversation once. The once-a-minute look is for
  the deletions another process made: they are purged even if that process dies first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from web.db import trash as db
from web.db.models import utcnow
from web.db.session import Factory

log = logging.getLogger(__name__)

UNDO_S = 10
"""How long the page offers Undo after a delete."""
KEEP_S = 60.0
"""A deleted conversation is removed for good this long after the delete, at the latest. Longer
than UNDO_S: the offer pauses while the pointer or the keyboard focus is on it."""


@dataclass(frozen=True)
class UndoOffer:
    conversation_id: str
    title: str
    seconds: int
    """How long the offer stays on screen from now."""


class Trash:
    def __init__(
        self,
        sessions: Factory,
        *,
        keep_s: float = KEEP_S,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """``clock`` and ``sleep`` are injectable so tests step time instead of waiting."""
        self._sessions = sessions
        self.keep = timedelta(seconds=keep_s)
        self.clock = clock
        self._sleep = sleep
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def delete(self, owner: str, conversation_id: str) -> None:
        await db.mark_deleted(self._sessions, owner, conversation_id, self.clock())
        self._wake.set()

    async def restore(self, owner: str, conversation_id: str) -> None:
        await db.restore(self._sessions, owner, conversation_id, since=self.clock() - self.keep)

    async def purge(self, owner: str, conversation_id: str) -> bool:
        return await db.purge(self._sessions, owner, conversation_id)

    async def offer(self, owner: str, conversation_id: str) -> UndoOffer | None:
        """The undo to show for a conversation this session deleted, while it can be undone."""
        deleted = await db.find_deleted(self._sessions, owner, conversation_id)
        if deleted is None:
            return None
        left = (deleted.deleted_at + self.keep - self.clock()).total_seconds()
        if left <= 0:
            return None
        return UndoOffer(deleted.id, deleted.title, math.ceil(min(UNDO_S, left)))

    async def sweep(self) -> int:
        """Purge every deletion older than KEEP_S; how many went."""
        purged = await db.purge_deleted_before(self._sessions, self.clock() - self.keep)
        if purged:
            log.info("purged %d deleted conversation(s)", purged)
        return purged

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="trash-sweep")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _idle(self) -> None:
        """Until this process deletes a conversation, or KEEP_S has passed (another's)."""
        waits = {
            asyncio.ensure_future(self._sleep(self.keep.total_seconds())),
            asyncio.ensure_future(self._wake.wait()),
        }
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
            await asyncio.gather(*waits, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            # Cleared before the query: a delete committed after it sets the event again.
            self._wake.clear()
            try:
                oldest = await db.oldest_deletion(self._sessions)
                if oldest is None:
                    await self._idle()
                    continue
                due_s = (oldest + self.keep - self.clock()).total_seconds()
                if due_s > 0:
                    await self._sleep(due_s)
                await self.sweep()
            except Exception:
                log.exception("could not purge deleted conversations; trying again later")
                await self._sleep(self.keep.total_seconds())
