"""How a turn ended, as one typed value: the runner builds it, the turn log stores it as it is,
and the page shows it.

    TurnOutcome(ending, attempts, ttft_s, total_s)
      Answered    a tier completed the reply (ok for the primary, degraded for the others)
      Unanswered  no tier could answer: the chain was exhausted
      Queued      no tier could answer now, by unavailability: a deferred job will (web.deferral)
      CutShort    Stop (the user) or shutdown (the server) ended it; the partial text is kept
      Crashed     the runner itself failed; the partial text is kept, the user is told to retry

Nothing downstream re-derives what the runner decided: ``status`` is a property of the value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from web.events import AttemptRecord, Completed, Exhausted, TierInfo
from web.status import ReplyState, TurnStatus
from web.wording import INTERRUPTED_MESSAGE, UNEXPECTED_MESSAGE, degraded_reason, queued_reason


class CutBy(StrEnum):
    STOP = "stop"
    SHUTDOWN = "shutdown"


@dataclass(frozen=True)
class Answered:
    completed: Completed


@dataclass(frozen=True)
class Unanswered:
    exhausted: Exhausted


@dataclass(frozen=True)
class QueuedJob:
    """What the outbox stores beside the queued turn (web.db.deferred)."""

    backend: str
    request_json: str
    unavailable: tuple[str, ...]
    """The labels of the tiers that could not answer, in chain order."""
    expire_s: float


@dataclass(frozen=True)
class Queued:
    exhausted: Exhausted
    job: QueuedJob

    @property
    def reason(self) -> str:
        return queued_reason(self.job.unavailable)


@dataclass(frozen=True)
class CutShort:
    by: CutBy
    text: str
    tier: TierInfo | None
    """The tier that was writing ``text`` (None if no tier had started)."""
    degraded_reason: str | None


@dataclass(frozen=True)
class Crashed:
    text: str


Ending = Answered | Unanswered | Queued | CutShort | Crashed


@dataclass(frozen=True)
class TurnOutcome:
    ending: Ending
    attempts: tuple[AttemptRecord, ...]
    ttft_s: float | None
    """From the start of the turn to the first token of the text that was kept."""
    total_s: float

    @property
    def status(self) -> TurnStatus:
        match self.ending:
            case Answered(completed):
                return TurnStatus.DEGRADED if completed.degraded else TurnStatus.OK
            case Unanswered() | Crashed():
                return TurnStatus.FAILED
            case Queued():
                return TurnStatus.QUEUED
            case CutShort(by=CutBy.STOP):
                return TurnStatus.STOPPED
            case CutShort():
                return TurnStatus.INTERRUPTED

    @property
    def state(self) -> ReplyState:
        return self.status.reply_state

    @property
    def text(self) -> str:
        match self.ending:
            case Answered(completed):
                return completed.text
            case Unanswered() | Queued():
                return ""
            case CutShort(text=text) | Crashed(text=text):
                return text

    @property
    def tier(self) -> TierInfo | None:
        """The tier that answered or was answering; None when no tier's text is kept as a reply
        (a failed turn shows no tier: the tiers tried are in the attempts)."""
        match self.ending:
            case Answered(completed):
                return completed.tier
            case CutShort(tier=tier):
                return tier
            case Unanswered() | Queued() | Crashed():
                return None

    @property
    def degraded_reason(self) -> str | None:
        match self.ending:
            case Answered(completed):
                return completed.degraded_reason
            case CutShort(degraded_reason=reason):
                return reason
            case Queued() as queued:
                return queued.reason
            case Unanswered() | Crashed():
                return None

    @property
    def error(self) -> str | None:
        """What the user is told went wrong (None when nothing did)."""
        match self.ending:
            case Unanswered(exhausted):
                return exhausted.message
            case Crashed():
                return UNEXPECTED_MESSAGE
            case CutShort(by=CutBy.SHUTDOWN):
                return INTERRUPTED_MESSAGE
            case Answered() | Queued() | CutShort():
                return None

    @property
    def hit_length_limit(self) -> bool:
        return isinstance(self.ending, Answered) and self.ending.completed.hit_length_limit


def answered(completed: Completed, attempts: Sequence[AttemptRecord]) -> TurnOutcome:
    return TurnOutcome(Answered(completed), tuple(attempts), completed.ttft_s, completed.total_s)


def unanswered(
    exhausted: Exhausted, attempts: Sequence[AttemptRecord], *, started_at: float
) -> TurnOutcome:
    ttft_s = _last_ttft(attempts, started_at)
    return TurnOutcome(Unanswered(exhausted), tuple(attempts), ttft_s, exhausted.total_s)


def queued(
    exhausted: Exhausted, job: QueuedJob, attempts: Sequence[AttemptRecord], *, started_at: float
) -> TurnOutcome:
    ttft_s = _last_ttft(attempts, started_at)
    return TurnOutcome(Queued(exhausted, job), tuple(attempts), ttft_s, exhausted.total_s)


def cut_short(
    by: CutBy,
    text: str,
    tier: TierInfo | None,
    attempts: Sequence[AttemptRecord],
    *,
    started_at: float,
    total_s: float,
) -> TurnOutcome:
    """``started_at``: the turn's start, Unix time (the first token is measured from it)."""
    reason = degraded_reason(tier, attempts) if tier is not None else None
    ending = CutShort(by, text, tier, reason)
    return TurnOutcome(ending, tuple(attempts), _last_ttft(attempts, started_at), total_s)


def crashed(
    text: str, attempts: Sequence[AttemptRecord], *, started_at: float, total_s: float
) -> TurnOutcome:
    return TurnOutcome(Crashed(text), tuple(attempts), _last_ttft(attempts, started_at), total_s)


def _last_ttft(attempts: Sequence[AttemptRecord], started_at: float) -> float | None:
    """The first token of the last attempt (the text that was kept), from the turn's start."""
    last = attempts[-1] if attempts else None
    if last is None or last.ttft_s is None:
        return None
    return max(0.0, last.started_at + last.ttft_s - started_at)
