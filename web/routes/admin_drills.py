"""/admin/drills: the drills `understudy drill` ran on this instance, and each one's report; and
the admin's words about drills (the dashboard's last drill and its overdue warning use them too).

    GET /admin/drills               a row per drill, newest first
    GET /admin/drills/{id}          one drill: what it did, and its Markdown report, rendered
    GET /admin/drills/{id}.json     its JSON report, as the runner sent it (a download)

A report is written by whoever ran the drill and quotes what models said: it is untrusted like
model output, so its Markdown goes through web.render (markdown-it without raw HTML, then the
sanitiser), never into the page as it is. The JSON is sent as a download, never rendered.
Like every admin page: AdminDep, ``no-store``, and ``now`` from the NowDep dependency.
"""

from __future__ import annotations

import re
from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup

from web.db.admin_drills import (
    OVERDUE_AFTER,
    DrillState,
    DrillView,
    Standing,
    drill_report,
    drills,
)
from web.db.session import read_scope
from web.deps import SessionsDep
from web.errors import NotFound
from web.render import render_markdown
from web.routes.admin_login import AdminDep
from web.routes.admin_render import NO_STORE, NowDep, render

router = APIRouter(prefix="/admin")

RUNBOOK = "docs/runbook.md"
QUARTERLY_COMMAND = "understudy drill --target URL --scenario quarterly"

STATE_WORDS: dict[DrillState, str] = {
    DrillState.RUNNING: "running",
    DrillState.EXPIRED: "expired without an end (its faults stopped at expiry)",
    DrillState.PASS: "pass",
    DrillState.FAIL: "fail",
    DrillState.ABORTED: "aborted",
    DrillState.ERROR: "error (the drill could not run)",
}


def state_words(state: DrillState) -> str:
    return STATE_WORDS[state]


def blast_radius(drill: DrillView) -> str:
    return "instance-wide" if drill.instance_wide else "drill turns only"


def drill_turns_words(count: int, window_label: str) -> str:
    """'3 drill turns in the last 7 days': the drills' turns, kept out of the figures beside."""
    return f"{count} drill turn{'' if count == 1 else 's'} in the {window_label.lower()}"


def drill_jobs_words(count: int) -> str:
    """The drills' open jobs, kept out of the queue's depth."""
    return f"{count} more of drill turns, not counted"


def overdue_warning(standing: Standing, now: datetime) -> str:
    """Why the dashboard warns (only say it when ``standing.overdue(now)``)."""
    what_to_do = f"run the quarterly drill against staging ({RUNBOOK})."
    passed_at = standing.passed_at
    if passed_at is None:
        if standing.last is None:
            return f"No drill has ever run on this instance: {what_to_do}"
        return f"No drill has ever passed on this instance: {what_to_do}"
    days = (now - passed_at).days
    return (
        f"No passing drill in the last {OVERDUE_AFTER.days} days: the last one passed "
        f"{days} days ago, on {passed_at:%Y-%m-%d}; {what_to_do}"
    )


WORDS = {
    "state_words": state_words,
    "blast_radius": blast_radius,
    "overdue_warning": overdue_warning,
    "drill_turns_words": drill_turns_words,
    "drill_jobs_words": drill_jobs_words,
}
"""The functions above, for the templates."""


@router.api_route("/drills", methods=["GET", "HEAD"])
async def drills_page(
    request: Request, _admin: AdminDep, sessions: SessionsDep, now: NowDep
) -> Response:
    async with read_scope(sessions) as session:
        listed = await drills(session)
    return render(
        request,
        "admin/drills.html",
        {"listed": listed, "now": now, "command": QUARTERLY_COMMAND, "runbook": RUNBOOK, **WORDS},
    )


# Declared before /drills/{drill_id}, which would take "abc.json" for an id.
@router.api_route("/drills/{drill_id}.json", methods=["GET", "HEAD"])
async def drill_json(drill_id: str, _admin: AdminDep, sessions: SessionsDep) -> Response:
    async with read_scope(sessions) as session:
        found = await drill_report(session, drill_id[:64])
    if found is None:
        raise NotFound("No drill with this id.")
    if found.report is None:
        raise NotFound("This drill has no report: it is still running, or ended without one.")
    short = re.sub(r"[^0-9A-Za-z]", "", found.drill.id)[:8]  # a header value: nothing to quote
    name = f"understudy-drill-{found.drill.started_at:%Y%m%d-%H%M%S}-{short}.json"
    return Response(
        found.report,
        media_type="application/json",
        headers={**NO_STORE, "Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.api_route("/drills/{drill_id}", methods=["GET", "HEAD"])
async def drill_page(
    request: Request, drill_id: str, _admin: AdminDep, sessions: SessionsDep, now: NowDep
) -> Response:
    async with read_scope(sessions) as session:
        found = await drill_report(session, drill_id[:64])
    if found is None:
        raise NotFound("No drill with this id.")
    # Sanitised by web.render: the only markup of the report that reaches the page.
    report_html = Markup(render_markdown(found.markdown)) if found.markdown else None
    return render(
        request,
        "admin/drill.html",
        {"drill": found.drill, "report_html": report_html, "now": now, **WORDS},
    )
