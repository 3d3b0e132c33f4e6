"""Saving the text of live turns now and then, so that a server killed outright (no chance to
write an outcome) still leaves the partial reply behind.

One checkpoint task per runner saves the turns that changed since their last save, every
``interval_s`` at most, in the write queue's background lane: the token path never waits for it,
and urgent writes (a user's message) slip in between its short transactions.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from web.db.session import Factory
from web.db.turnlog import Checkpoint, checkpoint_turns
from web.db.writelock import background_writes
from web.live import LiveTurn

log = logging.getLogger(__name__)

CHECKPOINT_S = 2.0
"""A live turn's text reaches the database at most this often (and only when it has changed)."""
CHECKPOINT_BATCH = 50
"""Turns per checkpoint transaction: short transactions, so urgent writes slip in between."""


class Checkpointer:
    def __init__(
        self,
        sessions: Factory,
        live_turns: Callable[[], Sequence[LiveTurn]],
        *,
        interval_s: float = CHECKPOINT_S,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """``live_turns``: the turns to save now (the runner leaves out those being finished,
        whose final write must not be overtaken by a stale checkpoint). ``sleep`` is injectable
        so tests step the interval instead of waiting for it."""
        self._sessions = sessions
        self._live_turns = live_turns
        self._interval_s = interval_s
        self._sleep = sleep
        self._saved: dict[str, int] = {}
        """turn id -> the revision last saved."""
        self._task: asyncio.Task[None] | None = None

    def ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop(), name="turn-checkpoints")

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _loop(self) -> None:
        """Runs while any turn is live; the runner starts it again for the next one."""
        while live := self._live_turns():
            await self._sleep(self._interval_s)
            live = self._live_turns()
            current = {turn.turn_id for turn in live}
            self._saved = {k: v for k, v in self._saved.items() if k in current}
            changed = [t for t in live if t.revision != self._saved.get(t.turn_id, 0)]
            for start in range(0, len(changed), CHECKPOINT_BATCH):
                await self.save(changed[start : start + CHECKPOINT_BATCH])

    async def save(self, batch: Sequence[LiveTurn]) -> None:
        # Read each turn's state and revision together (no await in between).
        revisions = [turn.revision for turn in batch]
        saves = [Checkpoint(t.turn_id, t.text, t.tier, t.reason) for t in batch]
        try:
            with background_writes():
                await checkpoint_turns(self._sessions, saves)
        except Exception:
            log.exception("could not checkpoint %d live turn(s)", len(saves))
            return
        for turn, revision in zip(batch, revisions, strict=True):
            self._saved[turn.turn_id] = revision
