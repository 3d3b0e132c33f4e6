"""What the admin pages read about drills (`understudy drill`): the list, one drill, and where the
instance stands (its last drill, its last passing one).

A drill is *running* while it has not ended and its faults still apply (before ``expires_at``);
one that never ended and is past ``expires_at`` has *expired*: its runner died, its faults stopped
by themselves, and it has no verdict. Otherwise its state is its verdict. A drill is *overdue*
when none ended with a pass in the last :data:`OVERDUE_AFTER` (the quarterly drill, with some
slack), or none ever did: the same rule as the metrics' example alert (docs/alerts.yml). Like web.db.admin_queue, ages are measured against a ``now`` the caller passes.
All functions take a session (use web.db.session.read_scope) and return frozen dataclasses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from web.db.models import Drill

OVERDUE_AFTER = timedelta(days=90)
"""No passing drill for this long and the dashboard warns (as the metrics' example alert does)."""
LIST_LIMIT = 200
"""The drills page lists this many, newest first: four a year make this decades."""


class DrillState(StrEnum):
    RUNNING = "running"
    EXPIRED = "expired"
    """Never ended, and past ``expires_at``: its faults stopped by themselves."""
    PASS = "pass"
    FAIL = "fail"
    ABORTED = "aborted"
    ERROR = "error"


@dataclass(frozen=True)
class FaultView:
    tier: str
    kind: str
    params: tuple[tuple[str, str], ...]
    """Its other fields (``delay_s``, ``after_tokens``, ...), as text, in the stored order."""

    def __str__(self) -> str:
        extra = ", ".join(f"{k} {v}" for k, v in self.params)
        return f"{self.tier}: {self.kind}" + (f" ({extra})" if extra else "")


@dataclass(frozen=True)
class DrillView:
    id: str
    scenario: str
    faults: tuple[FaultView, ...]
    instance_wide: bool
    started_at: datetime
    expires_at: datetime
    ended_at: datetime | None
    verdict: str | None
    has_report: bool
    """A JSON report is stored (the runner sent it when it ended the drill)."""

    def state(self, now: datetime) -> DrillState:
        if self.ended_at is None:
            return DrillState.RUNNING if now < self.expires_at else DrillState.EXPIRED
        try:
            return DrillState(self.verdict or DrillState.ERROR)
        except ValueError:  # a verdict this page does not know: not a pass, whatever it says
            return DrillState.ERROR

    def duration(self, now: datetime) -> timedelta:
        """Start to end; while running, so far; expired, until its faults stopped."""
        end = self.ended_at if self.ended_at is not None else min(now, self.expires_at)
        return max(timedelta(0), end - self.started_at)


@dataclass(frozen=True)
class DrillReport:
    drill: DrillView
    markdown: str | None
    report: str | None
    """The JSON report as stored."""


@dataclass(frozen=True)
class DrillList:
    drills: tuple[DrillView, ...]
    total: int


@dataclass(frozen=True)
class Standing:
    """Where the instance stands: for the dashboard's last drill and its overdue warning."""

    last: DrillView | None
    last_pass: DrillView | None

    @property
    def passed_at(self) -> datetime | None:
        """When the last passing drill ended (the moment the metric
        understudy_drill_last_pass_timestamp_seconds gives too)."""
        return None if self.last_pass is None else self.last_pass.ended_at

    def overdue(self, now: datetime) -> bool:
        return self.passed_at is None or now - self.passed_at > OVERDUE_AFTER


async def drills(session: AsyncSession, *, limit: int = LIST_LIMIT) -> DrillList:
    total = await session.scalar(select(func.count()).select_from(Drill)) or 0
    rows = await session.scalars(_newest_first().limit(limit))
    return DrillList(tuple(_view(d) for d in rows), total)


async def drill_report(session: AsyncSession, drill_id: str) -> DrillReport | None:
    row = await session.get(Drill, drill_id)
    if row is None:
        return None
    return DrillReport(_view(row), row.markdown, row.report)


async def standing(session: AsyncSession) -> Standing:
    last = await session.scalar(_newest_first().limit(1))
    last_pass = await session.scalar(
        select(Drill)
        .where(Drill.ended_at.is_not(None), Drill.verdict == DrillState.PASS)
        .order_by(Drill.ended_at.desc(), Drill.id.desc())
        .limit(1)
    )
    return Standing(
        None if last is None else _view(last), None if last_pass is None else _view(last_pass)
    )


def _newest_first() -> Select[Drill]:
    return select(Drill).order_by(Drill.started_at.desc(), Drill.id.desc())


def _view(d: Drill) -> DrillView:
    return DrillView(
        d.id,
        d.scenario,
        _faults(d.faults),
        d.instance_wide,
        d.started_at,
        d.expires_at,
        d.ended_at,
        d.verdict,
        d.report is not None,
    )


def _faults(raw: str) -> tuple[FaultView, ...]:
    """The stored faults; a row that holds something else shows as one unnamed fault rather than
    failing the page (like web.db.admin_queue's job reasons)."""
    try:
        faults = json.loads(raw)
    except ValueError:
        return (FaultView("?", raw[:200], ()),)
    if not isinstance(faults, list):
        return (FaultView("?", raw[:200], ()),)
    views = []
    for fault in faults:
        if not isinstance(fault, dict):
            views.append(FaultView("?", str(fault)[:200], ()))
            continue
        params = tuple((str(k), str(v)) for k, v in fault.items() if k not in ("tier", "kind"))
        views.append(FaultView(str(fault.get("tier", "?")), str(fault.get("kind", "?")), params))
    return tuple(views)
