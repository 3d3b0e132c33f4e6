"""Queued and delayed turns for the admin's tests, written as rows (no worker runs).

What the rows hold follows issue 10 and the schema of migration 0003: a queued turn failed on
every synchronous tier and has an open job; the deferral's submissions and polls are attempts of
the turn (tier "deferral", request id = the batch id); a turn the deferral answered ends
"degraded" on tier "deferral" with its job "done".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from web.db.models import Attempt, DeferredJob, Message, Turn
from web.db.session import session_scope
from web.providers.base import ErrorKind
from web.status import AttemptOutcome, JobState, TurnStatus
from web.wording import phrase

from .database import add_user_message, start_turn
from .outcomes import HAIKU, OPENAI, SONNET

Factory = async_sessionmaker[AsyncSession]
DEFERRAL = "deferral"
UNAVAILABLE = ("Sonnet", "Haiku", "GPT-5.5")
BATCH = "msgbatch_0123456789abcdef"


@dataclass(frozen=True)
class Poll:
    """A deferral attempt: ``after`` the job was queued, with this outcome."""

    after: timedelta
    outcome: AttemptOutcome
    error_kind: ErrorKind | None = None


async def deferred_turn(
    factory: Factory,
    *,
    state: JobState,
    queued_at: datetime,
    finished_at: datetime | None = None,
    backend: str = "anthropic_batch",
    polls: tuple[Poll, ...] = (),
    batch_id: str | None = BATCH,
    last_error: str | None = None,
    prompt: str = "Hi",
) -> str:
    """A turn that every synchronous tier failed, queued at ``queued_at``, its job in ``state``
    with the deferral attempts ``polls``. A job that is done wrote its reply (a delayed one)."""
    conversation_id, message_id = await add_user_message(factory, prompt)
    turn_id, _ = await start_turn(
        factory, conversation_id=conversation_id, user_message_id=message_id
    )
    started = queued_at - timedelta(seconds=2)
    sync = [
        _attempt(turn_id, 1, SONNET.name, SONNET.model, started, AttemptOutcome.FAILED, 529),
        _attempt(turn_id, 2, HAIKU.name, HAIKU.model, started, AttemptOutcome.FAILED, 529),
        _attempt(turn_id, 3, OPENAI.name, OPENAI.model, started, AttemptOutcome.FAILED, 503),
    ]
    later = [
        _attempt(
            turn_id,
            len(sync) + i,
            DEFERRAL,
            SONNET.model,
            queued_at + poll.after,
            poll.outcome,
            None,
            request_id=batch_id,
            kind=poll.error_kind,
        )
        for i, poll in enumerate(polls, 1)
    ]
    done = state == JobState.DONE
    values: dict[str, object] = {
        "started_at": started,
        "status": TurnStatus.QUEUED,
        "attempt_count": len(sync) + len(later),
    }
    if state not in (JobState.WAITING, JobState.SUBMITTED, JobState.CANCELLING):
        values |= {
            "status": TurnStatus.DEGRADED if done else TurnStatus.FAILED,
            "finished_at": finished_at,
        }
    if done:
        values |= {
            "tier": DEFERRAL,
            "tier_index": 3,
            "provider": SONNET.provider,
            "model": SONNET.model,
        }
    async with session_scope(factory) as session:
        await session.execute(update(Turn).where(Turn.id == turn_id).values(**values))
        session.add_all([*sync, *later])
        session.add(
            DeferredJob(
                turn_id=turn_id,
                backend=backend,
                state=state,
                request="{}",
                reason=json.dumps(list(UNAVAILABLE)),
                queued_at=queued_at,
                expires_at=queued_at + timedelta(hours=24),
                next_at=queued_at + timedelta(seconds=30),
                batch_id=batch_id,
                submitted_at=queued_at if batch_id else None,
                submissions=sum(p.outcome == AttemptOutcome.SUBMITTED for p in polls),
                polls=_polls_since_last_submission(polls),
                last_error=last_error,
                finished_at=finished_at,
            )
        )
        if done:
            await session.execute(
                update(Message)
                .where(Message.turn_id == turn_id, Message.role == "assistant")
                .values(content="A delayed hello.")
            )
    return turn_id


def _polls_since_last_submission(polls: tuple[Poll, ...]) -> int:
    """What the worker keeps in ``polls``: each submission starts the count again."""
    count = 0
    for poll in polls:
        if poll.outcome == AttemptOutcome.SUBMITTED:
            count = 0
        elif poll.outcome == AttemptOutcome.PENDING:
            count += 1
    return count


def _attempt(
    turn_id: str,
    seq: int,
    tier: str,
    model: str,
    started_at: datetime,
    outcome: AttemptOutcome,
    status: int | None,
    *,
    request_id: str | None = None,
    kind: ErrorKind | None = None,
) -> Attempt:
    if outcome == AttemptOutcome.FAILED and kind is None:
        kind = ErrorKind.OVERLOADED
    return Attempt(
        turn_id=turn_id,
        seq=seq,
        tier=tier,
        provider="anthropic" if tier != OPENAI.name else "openai",
        model=model,
        started_at=started_at,
        elapsed_ms=40.0 + seq,
        ttft_ms=None,
        outcome=outcome,
        error_kind=kind.value if kind else None,
        error_message=phrase(kind) if kind else None,
        http_status=status,
        request_id=request_id,
    )
