"""What the admin page reads about the deferral: the queue now, and each queued turn's job.

A *queued* turn is one whose status is queued now: no tier could answer, its job will. A
*delayed* turn is one whose job is done: the reply came from the deferral, later. The queue's
depth counts the open jobs (OPEN_JOB_STATES); its age is that of the oldest open job. Ages and
waits are measured against a ``now`` the caller passes, never the clock read here. A drill's jobs
(turns.drill_id set) are not in the depth, the age or the backends: they are counted apart
(QueueSummary.drill_jobs), since the queue's figures say how long users wait. All functions
take a session (use web.db.session.read_scope) and return plain frozen dataclasses.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from web.db.logged_turns import DRILL_TURNS, USER_TURNS
from web.db.models import DeferredJob, Turn
from web.status import OPEN_JOB_STATES, JobState, TurnStatus

QUEUED: ColumnElement[bool] = Turn.status == TurnStatus.QUEUED
DELAYED: ColumnElement[bool] = (
    select(DeferredJob.turn_id)
    .where(DeferredJob.turn_id == Turn.id, DeferredJob.state == JobState.DONE)
    .exists()
)
_OPEN = DeferredJob.state.in_(sorted(OPEN_JOB_STATES))


@dataclass(frozen=True)
class JobView:
    turn_id: str
    backend: str
    state: JobState
    unavailable: tuple[str, ...]
    """The labels of the tiers that could not answer when it was queued."""
    queued_at: datetime
    expires_at: datetime
    next_at: datetime
    batch_id: str | None
    submitted_at: datetime | None
    submissions: int
    polls: int
    last_error: str | None
    finished_at: datetime | None

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_JOB_STATES

    @property
    def delayed(self) -> bool:
        """The reply came from this job."""
        return self.state == JobState.DONE

    def wait(self, now: datetime) -> timedelta:
        """From queued to finished; for an open job, so far (until ``now``)."""
        end = self.finished_at if self.finished_at is not None else now
        return max(timedelta(0), end - self.queued_at)


@dataclass(frozen=True)
class QueueSummary:
    depth: int
    """Open jobs: waiting, submitted or cancelling."""
    oldest_queued_at: datetime | None
    backends: tuple[tuple[str, int], ...]
    """(backend, open jobs), busiest first."""
    drill_jobs: int = 0
    """Open jobs of drills' turns: in none of the figures above."""

    def oldest_age(self, now: datetime) -> timedelta | None:
        if self.oldest_queued_at is None:
            return None
        return max(timedelta(0), now - self.oldest_queued_at)


async def queue_summary(session: AsyncSession) -> QueueSummary:
    rows = (
        await session.execute(
            select(DeferredJob.backend, func.count(), func.min(DeferredJob.queued_at))
            .join(Turn, Turn.id == DeferredJob.turn_id)
            .where(_OPEN, USER_TURNS)
            .group_by(DeferredJob.backend)
        )
    ).all()
    drill_jobs = await session.scalar(
        select(func.count())
        .select_from(DeferredJob)
        .join(Turn, Turn.id == DeferredJob.turn_id)
        .where(_OPEN, DRILL_TURNS)
    )
    oldest = min((queued_at for _, _, queued_at in rows), default=None)
    backends = tuple(
        (backend, count) for backend, count, _ in sorted(rows, key=lambda r: (-r[1], r[0]))
    )
    return QueueSummary(sum(count for _, count in backends), oldest, backends, drill_jobs or 0)


async def jobs_of(session: AsyncSession, turn_ids: Sequence[str]) -> dict[str, JobView]:
    """turn id -> its job, for the turns that have one."""
    if not turn_ids:
        return {}
    jobs = await session.scalars(select(DeferredJob).where(DeferredJob.turn_id.in_(turn_ids)))
    return {
        j.turn_id: JobView(
            j.turn_id,
            j.backend,
            j.state,
            _labels(j.reason),
            j.queued_at,
            j.expires_at,
            j.next_at,
            j.batch_id,
            j.submitted_at,
            j.submissions,
            j.polls,
            j.last_error,
            j.finished_at,
        )
        for j in jobs
    }


def _labels(reason: str) -> tuple[str, ...]:
    """The job's ``reason`` column, a JSON list of labels. A row that holds something else is
    shown as it is rather than failing the page that shows it."""
    try:
        labels = json.loads(reason)
    except ValueError:
        return (reason,)
    if not isinstance(labels, list):
        return (reason,)
    return tuple(str(label) for label in labels)
