"""How the admin pages show the deferral: durations, a job's state in words, and a turn's attempts
with each run of "still processing" polls folded into one row.

A queued turn's submissions and polls are ordinary attempts (tier "deferral", request id = the
batch id). A batch can take hours, and the worker polls it with backoff all that time: listed one
per row, the polls would bury the submissions and errors that matter. A run of consecutive
``pending`` polls of the same batch is one row ("pending x12", first and last time); every other
attempt keeps a row of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from web.db.admin_queue import JobView
from web.db.logged_turns import AttemptView
from web.status import AttemptOutcome, JobState

OUTCOME_NOTES: dict[str, str] = {
    AttemptOutcome.SUBMITTED: "handed to its backend",
    AttemptOutcome.PENDING: "still processing",
}
"""What a deferral attempt's outcome means, said under it in the attempts table."""


def format_duration(span: timedelta | None) -> str:
    """'45 s', '4 min 12 s', '3 h 5 min', '2 d 1 h' (rounded down); '-' for none.

    Finer than web.wording.waited, the users' rounded words ("4 min"): the admin compares waits
    and ages, and a queue can hold a job for more than a day."""
    if span is None:
        return "-"
    seconds = max(0, int(span.total_seconds()))
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    return f"{seconds} s"


def job_outcome(job: JobView) -> str:
    """Where the job stands, or how it ended."""
    match job.state:
        case JobState.WAITING if job.submissions:
            return "waiting to be submitted again (its last try did not succeed)"
        case JobState.WAITING:
            return "waiting to be submitted"
        case JobState.SUBMITTED:
            return "submitted: its backend is working on it"
        case JobState.CANCELLING:
            return "cancelled by the user: its request to the backend is still to be cancelled"
        case JobState.DONE:
            return "done: the reply was written (a delayed reply)"
        case JobState.FAILED:
            return "failed: no reply was written"
        case JobState.CANCELLED:
            return "cancelled by the user: no reply was written"


@dataclass(frozen=True)
class AttemptRow:
    first: AttemptView
    last: AttemptView
    """The same attempt as ``first``, unless this row folds a run of polls."""
    count: int
    longest_ms: float
    """The longest of its attempts' elapsed times."""

    @property
    def seqs(self) -> str:
        return str(self.first.seq) if self.count == 1 else f"{self.first.seq}-{self.last.seq}"

    @property
    def note(self) -> str:
        return OUTCOME_NOTES.get(self.first.outcome, "")


def attempt_rows(attempts: Sequence[AttemptView]) -> tuple[AttemptRow, ...]:
    rows: list[AttemptRow] = []
    for attempt in attempts:
        if rows and _same_poll(rows[-1].last, attempt):
            run = rows[-1]
            longest = max(run.longest_ms, attempt.elapsed_ms)
            rows[-1] = AttemptRow(run.first, attempt, run.count + 1, longest)
        else:
            rows.append(AttemptRow(attempt, attempt, 1, attempt.elapsed_ms))
    return tuple(rows)


def _same_poll(before: AttemptView, after: AttemptView) -> bool:
    return (
        before.outcome == after.outcome == AttemptOutcome.PENDING
        and before.tier == after.tier
        and before.request_id == after.request_id
    )
