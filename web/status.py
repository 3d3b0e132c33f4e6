"""The statuses that cross module boundaries, as StrEnums (stored as their string values).

TurnStatus      a turn in the log: pending -> streaming -> one of the final statuses
AttemptOutcome  one try inside a turn (a deferred job's submissions and polls too)
JobState        a deferred job (web.deferral)
HedgeRole       a try's part in a hedge (web.hedge), if it had one
ReplyState      a reply on the page (its element's ``data-state``)
Activity        a conversation in the sidebar (its item's ``data-activity``)
"""

from __future__ import annotations

from enum import StrEnum


class ReplyState(StrEnum):
    STREAMING = "streaming"
    QUEUED = "queued"
    DONE = "done"
    STOPPED = "stopped"
    FAILED = "failed"


class Activity(StrEnum):
    IDLE = "idle"
    WRITING = "writing"
    """A reply is being written in it."""
    NEW = "new"
    """A reply finished since the conversation was last on screen."""
    QUEUED = "queued"
    """A reply is queued in it (web.deferral): it lands later."""


class TurnStatus(StrEnum):
    PENDING = "pending"
    STREAMING = "streaming"
    OK = "ok"
    DEGRADED = "degraded"
    FAILED = "failed"
    STOPPED = "stopped"
    INTERRUPTED = "interrupted"
    QUEUED = "queued"
    """No tier could answer now; a deferred job (web.deferral) will write the reply later."""

    @property
    def is_live(self) -> bool:
        return self in LIVE_STATUSES

    @property
    def reply_state(self) -> ReplyState:
        """How a reply whose turn has this status shows on the page."""
        match self:
            case TurnStatus.PENDING | TurnStatus.STREAMING:
                return ReplyState.STREAMING
            case TurnStatus.OK | TurnStatus.DEGRADED:
                return ReplyState.DONE
            case TurnStatus.STOPPED | TurnStatus.INTERRUPTED:
                return ReplyState.STOPPED
            case TurnStatus.FAILED:
                return ReplyState.FAILED
            case TurnStatus.QUEUED:
                return ReplyState.QUEUED


LIVE_STATUSES = frozenset({TurnStatus.PENDING, TurnStatus.STREAMING})
"""A process is running the turn now (its runner holds it)."""
FINAL_STATUSES = frozenset(set(TurnStatus) - LIVE_STATUSES - {TurnStatus.QUEUED})
"""The turn has ended for good. A queued turn is neither: no process runs it, its job will."""


class AttemptOutcome(StrEnum):
    OK = "ok"
    FAILED = "failed"
    CANCELLED = "cancelled"
    """The consumer went away (Stop, shutdown, a closed stream) while the attempt ran."""
    ABANDONED = "abandoned"
    """The user chose not to wait for it ("Answer with Haiku now") before it sent any text."""
    SKIPPED = "skipped"
    """Not tried: the tier's circuit breaker is open (see web.breaker)."""
    SUBMITTED = "submitted"
    """A deferred job's request was handed to its backend (a batch was created)."""
    PENDING = "pending"
    """A deferred job's backend was asked and is still working on it."""


class JobState(StrEnum):
    """A deferred job (web.deferral): waiting -> submitted -> done, with the other endings."""

    WAITING = "waiting"
    """To be submitted (or submitted again) at ``next_at``."""
    SUBMITTED = "submitted"
    """Its backend has it (``batch_id``); to be polled at ``next_at``."""
    CANCELLING = "cancelling"
    """The user cancelled; its batch request is still to be cancelled."""
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


OPEN_JOB_STATES = frozenset({JobState.WAITING, JobState.SUBMITTED, JobState.CANCELLING})


class HedgeRole(StrEnum):
    HEDGED = "hedged"
    """It had sent no text after its tier's ``hedge_after_s``, so a hedge was started beside it."""
    HEDGE = "hedge"
    """It was started beside a slow try; it only shows if it wins (or the other one ends)."""
