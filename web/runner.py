"""Turns run in background tasks, not inside the request that shows them.

A turn starts when the user's message is committed; its task consumes the chain's events, keeps the
reply so far in memory (a :class:`LiveTurn`) and writes the outcome once, when it ends. So that a
server killed outright (no chance to write an outcome) still leaves the partial text behind, one
checkpoint task per runner saves the text of turns that changed, every CHECKPOINT_S at most, in the
write queue's background lane: the token path never waits for it. Pages and
SSE streams only *watch* a live turn: a stream replays the state so far and follows new updates,
so a closed tab or a reload never cancels or repeats a model call. Ending a turn early is explicit:

- Stop (the user) cancels the task: the upstream call is cancelled, the partial text is kept and
  the turn is recorded "stopped".
- Shutdown cancels every task the same way and records the turns "interrupted".

Once its outcome is written, a turn leaves the runner; from then on the database is its truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from dataclasses import dataclass
from typing import cast

from web.chain import Chain, degraded_reason
from web.db.models import TurnStatus
from web.db.session import Factory
from web.db.turnlog import INTERRUPTED_MESSAGE, Checkpoint, checkpoint_turns, record_outcome
from web.db.writelock import background_writes
from web.events import (
    AttemptFailed,
    AttemptRecord,
    ChainEvent,
    Completed,
    Exhausted,
    TextDelta,
    TierInfo,
    TierStarted,
)
from web.providers.base import ChatRequest

log = logging.getLogger(__name__)

DEADLINE_GRACE_S = 30.0
"""The chain enforces the turn deadline; this backstop only catches a chain that never ends."""
STOP_WAIT_S = 10.0
UNEXPECTED_MESSAGE = "Something went wrong while generating this reply. Try again."
CHECKPOINT_S = 2.0
"""A live turn's text reaches the database at most this often (and only when it has changed)."""
CHECKPOINT_BATCH = 50
"""Turns per checkpoint transaction: short transactions, so urgent writes slip in between."""


@dataclass(frozen=True)
class TierChange:
    """A tier starts (or restarts): the reply so far is empty and the badge may change."""

    tier: TierInfo
    reason: str | None


@dataclass(frozen=True)
class Delta:
    text: str


@dataclass(frozen=True)
class Finished:
    pass


Update = TierChange | Delta | Finished


class LiveTurn:
    """What a running turn has produced so far, and a way to follow what it produces next."""

    def __init__(self, turn_id: str, conversation_id: str, user_message_id: int) -> None:
        self.turn_id = turn_id
        self.conversation_id = conversation_id
        self.user_message_id = user_message_id
        self.tier: TierInfo | None = None
        self.reason: str | None = None
        self.parts: list[str] = []
        self.state = "streaming"
        """streaming, then done | stopped | failed."""
        self.status: str | None = None
        """The TurnStatus recorded at the end."""
        self.error: str | None = None
        self.updates: list[Update] = []
        self.task: asyncio.Task[None] | None = None
        self.stop_requested = False
        self.hit_length_limit = False
        """The reply stopped at the tier's max_output_tokens (known when it completes)."""
        self.finishing = False
        self.revision = 0
        """Counts updates; the checkpoint saves a turn whose revision moved since its last save."""
        self.saved_revision = 0
        self._changed = asyncio.Event()

    @property
    def text(self) -> str:
        return "".join(self.parts)

    @property
    def finished(self) -> bool:
        return self.state != "streaming"

    def push(self, update: Update) -> None:
        self.updates.append(update)
        self.revision += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def follow(self, start: int) -> AsyncIterator[list[Update]]:
        """Batches of updates from index `start` on, until the turn has finished.

        A slow reader gets everything that piled up in one batch, so it catches up in one write.
        """
        index = start
        while True:
            if index < len(self.updates):
                batch = self.updates[index:]
                index += len(batch)
                yield batch
                continue
            if self.finished:
                return
            changed = self._changed
            await changed.wait()


class TurnRunner:
    def __init__(
        self,
        chain: Chain,
        sessions: Factory,
        *,
        deadline_s: float,
        checkpoint_s: float = CHECKPOINT_S,
    ) -> None:
        self._chain = chain
        self._sessions = sessions
        self._deadline_s = deadline_s
        self._checkpoint_s = checkpoint_s
        self._live: dict[str, LiveTurn] = {}
        self._by_conversation: dict[str, LiveTurn] = {}
        self._claimed: set[str] = set()
        self._checkpointer: asyncio.Task[None] | None = None

    def get(self, turn_id: str) -> LiveTurn | None:
        return self._live.get(turn_id)

    def live_in(self, conversation_id: str) -> LiveTurn | None:
        return self._by_conversation.get(conversation_id)

    def __len__(self) -> int:
        return len(self._live)

    @contextlib.contextmanager
    def claim(self, conversation_id: str) -> Iterator[bool]:
        """Reserve a conversation for one new turn; yields False when it is busy.

        The check and the mark happen with nothing awaited in between, so two requests racing
        to start a reply (a double click, two tabs) cannot both pass: the second gets False.
        start() takes the claim over; leaving the block releases it, error or not.
        """
        if conversation_id in self._claimed or conversation_id in self._by_conversation:
            yield False
            return
        self._claimed.add(conversation_id)
        try:
            yield True
        finally:
            self._claimed.discard(conversation_id)

    def start(
        self, turn_id: str, conversation_id: str, user_message_id: int, request: ChatRequest
    ) -> LiveTurn:
        live = LiveTurn(turn_id, conversation_id, user_message_id)
        self._live[turn_id] = live
        self._by_conversation[conversation_id] = live
        live.task = asyncio.create_task(self._run(live, request), name=f"turn-{turn_id}")
        if self._checkpointer is None or self._checkpointer.done():
            self._checkpointer = asyncio.create_task(self._checkpoints(), name="turn-checkpoints")
        return live

    async def stop(self, turn_id: str) -> LiveTurn | None:
        """Cancel a live turn and wait until its outcome is written; None if it is not live."""
        live = self._live.get(turn_id)
        if live is None or live.task is None:
            return None
        if not live.finishing:
            live.stop_requested = True
            live.task.cancel()
        await asyncio.wait([live.task], timeout=STOP_WAIT_S)
        return live

    async def shutdown(self) -> None:
        """Cancel every live turn (recorded "interrupted", partial text kept) and wait for them."""
        if self._checkpointer is not None:
            self._checkpointer.cancel()
        tasks = []
        for live in list(self._live.values()):
            if live.task is None:
                continue
            if not live.finishing:
                live.task.cancel()
            tasks.append(live.task)
        if tasks:
            log.info("stopping %d running turn(s)", len(tasks))
            await asyncio.wait(tasks, timeout=STOP_WAIT_S)

    async def _checkpoints(self) -> None:
        """Save the text of live turns that changed, every checkpoint_s, while any turn is live."""
        while self._live:
            await asyncio.sleep(self._checkpoint_s)
            changed = [
                live
                for live in self._live.values()
                if live.revision != live.saved_revision and not live.finishing
            ]
            for start in range(0, len(changed), CHECKPOINT_BATCH):
                batch = changed[start : start + CHECKPOINT_BATCH]
                # Read each turn's state and revision together (no await in between).
                revisions = [live.revision for live in batch]
                saves = [
                    Checkpoint(live.turn_id, live.text, live.tier, live.reason) for live in batch
                ]
                try:
                    with background_writes():
                        await checkpoint_turns(self._sessions, saves)
                except Exception:
                    log.exception("could not checkpoint %d live turn(s)", len(saves))
                    continue
                for live, revision in zip(batch, revisions, strict=True):
                    live.saved_revision = revision

    async def _run(self, live: LiveTurn, request: ChatRequest) -> None:
        started = time.monotonic()
        attempts: list[AttemptRecord] = []
        outcome: Completed | Exhausted | None = None
        try:
            async with (
                asyncio.timeout(self._deadline_s + DEADLINE_GRACE_S),
                # on_attempt sees every try, including the one cancelled by Stop or shutdown.
                contextlib.aclosing(
                    _generator(self._chain.run(request, on_attempt=attempts.append))
                ) as events,
            ):
                async for event in events:
                    if isinstance(event, TextDelta):
                        live.parts.append(event.text)
                        live.push(Delta(event.text))
                    elif isinstance(event, TierStarted):
                        live.parts.clear()
                        live.tier = event.tier
                        live.reason = degraded_reason(event.tier, attempts)
                        live.push(TierChange(event.tier, live.reason))
                    elif isinstance(event, AttemptFailed):
                        pass  # already in `attempts`, through on_attempt
                    else:
                        outcome = event
        except asyncio.CancelledError:
            live.finishing = True
            if isinstance(outcome, Completed):
                # Stop or shutdown came while the finished chain was closing: the reply is whole.
                await self._complete(live, outcome)
                raise
            status = TurnStatus.STOPPED if live.stop_requested else TurnStatus.INTERRUPTED
            await self._finish(
                live,
                status=status,
                text=live.text,
                attempts=attempts,
                error=None if live.stop_requested else INTERRUPTED_MESSAGE,
                total_s=time.monotonic() - started,
            )
            raise
        except Exception:
            log.exception("turn %s failed unexpectedly", live.turn_id)
            live.finishing = True
            await self._finish(
                live,
                status=TurnStatus.FAILED,
                text=live.text,
                attempts=attempts,
                error=UNEXPECTED_MESSAGE,
                total_s=time.monotonic() - started,
            )
            return
        live.finishing = True
        if isinstance(outcome, Completed):
            await self._complete(live, outcome)
        else:
            message = outcome.message if outcome else UNEXPECTED_MESSAGE
            await self._finish(
                live,
                status=TurnStatus.FAILED,
                text="",
                attempts=outcome.attempts if outcome else attempts,
                error=message,
                exhausted=outcome,
                total_s=time.monotonic() - started,
            )

    async def _complete(self, live: LiveTurn, outcome: Completed) -> None:
        live.tier = outcome.tier
        live.reason = outcome.degraded_reason
        live.hit_length_limit = outcome.hit_length_limit
        await self._finish(
            live,
            status=TurnStatus.DEGRADED if outcome.degraded else TurnStatus.OK,
            text=outcome.text,
            attempts=outcome.attempts,
            completed=outcome,
        )

    async def _finish(
        self,
        live: LiveTurn,
        *,
        status: str,
        text: str,
        attempts: tuple[AttemptRecord, ...] | list[AttemptRecord],
        error: str | None = None,
        completed: Completed | None = None,
        exhausted: Exhausted | None = None,
        total_s: float | None = None,
    ) -> None:
        """Write the outcome, then tell the watchers, then leave the runner (in that order, so a
        page loaded after a watcher saw the end reads the final state from the database)."""
        try:
            await record_outcome(
                self._sessions,
                live.turn_id,
                status=status,
                text=text,
                completed=completed,
                exhausted=exhausted,
                attempts=tuple(attempts),
                tier=live.tier,
                error_message=error,
                total_s=total_s,
            )
        except Exception:
            log.exception("turn %s: could not record its outcome (%s)", live.turn_id, status)
        finally:
            live.parts = [text]
            live.status = status
            live.error = error
            live.state = state_for(status)
            live.push(Finished())
            self._live.pop(live.turn_id, None)
            if self._by_conversation.get(live.conversation_id) is live:
                del self._by_conversation[live.conversation_id]


def _generator(events: AsyncIterator[ChainEvent]) -> AsyncGenerator[ChainEvent, None]:
    """Chain.run is an async generator typed as an iterator; aclosing needs its aclose()."""
    return cast(AsyncGenerator[ChainEvent, None], events)


_STATES = {
    TurnStatus.OK: "done",
    TurnStatus.DEGRADED: "done",
    TurnStatus.STOPPED: "stopped",
    TurnStatus.INTERRUPTED: "stopped",
    TurnStatus.FAILED: "failed",
}


def state_for(status: str) -> str:
    """The data-state of a reply whose turn has `status`."""
    return _STATES.get(status, "streaming")
