"""A running turn as watchers see it: its state so far, and the updates that change it.

The runner publishes the chain's own events (TierStarted, TextDelta), each AttemptRecord as it
ends, and one Finished with the turn's outcome; :meth:`LiveTurn.apply` folds them into the state
a page shows. A watcher subscribes and gets, in one step, a private copy of the state and the
iterator of every later update, so it shows nothing twice and misses nothing, whatever it awaits
in between.

:class:`LiveTurns` is the publish/subscribe seam. :class:`LocalLiveTurns` keeps everything in
this process; a deployment with several processes can put another implementation behind the same
four methods (the updates are plain frozen dataclasses, and a follower rebuilds the state from
them with the same ``apply``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from web.events import AttemptRecord, TextDelta, TierInfo, TierStarted
from web.outcome import TurnOutcome
from web.status import ReplyState
from web.wording import degraded_reason


@dataclass(frozen=True)
class Finished:
    outcome: TurnOutcome


Update = TierStarted | TextDelta | AttemptRecord | Finished


@dataclass(eq=False)
class LiveTurn:
    """What a running turn has produced so far."""

    turn_id: str
    conversation_id: str
    tier: TierInfo | None = None
    """The tier writing the reply now (or, once finished, the outcome's)."""
    reason: str | None = None
    """The degraded reason shown with the current tier."""
    parts: list[str] = field(default_factory=list)
    attempts: list[AttemptRecord] = field(default_factory=list)
    outcome: TurnOutcome | None = None
    revision: int = 0
    """Counts the updates applied; a checkpoint saves a turn whose revision moved."""

    @property
    def text(self) -> str:
        return "".join(self.parts)

    @property
    def finished(self) -> bool:
        return self.outcome is not None

    @property
    def state(self) -> ReplyState:
        return ReplyState.STREAMING if self.outcome is None else self.outcome.state

    def apply(self, update: Update) -> None:
        self.revision += 1
        match update:
            case TextDelta(text):
                self.parts.append(text)
            case TierStarted(tier):
                self.parts.clear()
                self.tier = tier
                self.reason = degraded_reason(tier, self.attempts)
            case AttemptRecord():
                self.attempts.append(update)
            case Finished(outcome):
                self.outcome = outcome
                self.parts = [outcome.text]
                self.tier = outcome.tier
                self.reason = outcome.degraded_reason

    def copy(self) -> LiveTurn:
        return LiveTurn(
            turn_id=self.turn_id,
            conversation_id=self.conversation_id,
            tier=self.tier,
            reason=self.reason,
            parts=list(self.parts),
            attempts=list(self.attempts),
            outcome=self.outcome,
            revision=self.revision,
        )


@dataclass(frozen=True)
class Subscription:
    turn: LiveTurn
    """A private copy of the state when subscribing: apply each later update to it."""
    updates: AsyncIterator[list[Update]]
    """Batches of the updates after that state, until (and including) Finished. A slow reader
    gets everything that piled up in one batch, so it catches up in one write."""


class LiveTurns(Protocol):
    def open(self, turn_id: str, conversation_id: str) -> LiveTurn:
        """Start publishing a turn; the returned state is the one this process updates."""
        ...

    def publish(self, turn_id: str, update: Update) -> None: ...

    def get(self, turn_id: str) -> LiveTurn | None:
        """The state now (read it, don't keep it), or None if the turn is not live."""
        ...

    def subscribe(self, turn_id: str) -> Subscription | None:
        """None if the turn is not live (it has ended: the database has its final state)."""
        ...


class _Channel:
    __slots__ = ("changed", "log", "turn")

    def __init__(self, turn: LiveTurn) -> None:
        self.turn = turn
        self.log: list[Update] = []
        self.changed = asyncio.Event()


class LocalLiveTurns:
    """Live turns of this process, followed by watchers in this process."""

    def __init__(self) -> None:
        self._channels: dict[str, _Channel] = {}

    def __len__(self) -> int:
        return len(self._channels)

    def open(self, turn_id: str, conversation_id: str) -> LiveTurn:
        turn = LiveTurn(turn_id, conversation_id)
        self._channels[turn_id] = _Channel(turn)
        return turn

    def publish(self, turn_id: str, update: Update) -> None:
        channel = self._channels.get(turn_id)
        if channel is None:
            return
        channel.turn.apply(update)
        channel.log.append(update)
        changed, channel.changed = channel.changed, asyncio.Event()
        changed.set()
        if isinstance(update, Finished):
            # Watchers keep their channel until they have read to the end; new ones read the
            # database from now on.
            del self._channels[turn_id]

    def get(self, turn_id: str) -> LiveTurn | None:
        channel = self._channels.get(turn_id)
        return None if channel is None else channel.turn

    def subscribe(self, turn_id: str) -> Subscription | None:
        channel = self._channels.get(turn_id)
        if channel is None:
            return None
        # The copy and the position are taken together, with nothing awaited in between.
        return Subscription(channel.turn.copy(), _follow(channel, len(channel.log)))


async def _follow(channel: _Channel, start: int) -> AsyncIterator[list[Update]]:
    index = start
    while True:
        if index < len(channel.log):
            batch = channel.log[index:]
            index += len(batch)
            yield batch
            continue
        if channel.turn.finished:
            return
        await channel.changed.wait()
