"""An admin page response: what every admin template gets, and never a cached copy; and the
moment the admin pages measure from.

Admin pages show the turn log (user prompts, provider errors): ``Cache-Control: no-store`` keeps
them out of the browser's and any proxy's cache. Ages, waits and the drills' overdue warning are
measured from ``utc_now``, a dependency (NowDep), so tests fix the moment.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import Response

from web.db.turns_cli import format_ms
from web.deps import templates_of
from web.routes.admin_deferral import format_duration, job_outcome
from web.security import csrf_token

NO_STORE = {"Cache-Control": "no-store"}


def utc_now() -> datetime:
    return datetime.now(UTC)


NowDep = Annotated[datetime, Depends(utc_now)]


def render(
    request: Request, name: str, context: dict[str, Any], status_code: int = 200, **headers: str
) -> Response:
    context = {
        "csrf_token": csrf_token(request),
        "format_ms": format_ms,
        "format_time": format_time,
        "format_clock": format_clock,
        "format_duration": format_duration,
        "job_outcome": job_outcome,
        **context,
    }
    response: Response = templates_of(request).TemplateResponse(
        request, name, context, status_code=status_code, headers={**NO_STORE, **headers}
    )
    return response


def format_time(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S}"


def format_clock(moment: datetime) -> str:
    """The time of day to the millisecond: attempts of one turn are close together."""
    return f"{moment.astimezone(UTC):%H:%M:%S.%f}"[:-3]


def format_stamp(moment: datetime) -> str:
    """The date and the time to the millisecond."""
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S.%f}"[:-3]


def clock_for(moments: Iterable[datetime]) -> Callable[[datetime], str]:
    """The time of day, unless the moments span more than one day (a deferred turn's polls can):
    then the date too."""
    days = {m.astimezone(UTC).date() for m in moments}
    return format_clock if len(days) <= 1 else format_stamp
