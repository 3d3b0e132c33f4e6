"""The drill API `understudy drill` drives (web.drills): start a drill, end it with its report.

    POST /admin/api/drills             {"scenario", "faults": [...], "instance_wide", "ttl_s"}
                                       -> 201 {"id", "header", "expires_at"}; 409 if one runs
    GET  /admin/api/drills/{id}        -> {"id", "scenario", "running", "verdict", ...}
    POST /admin/api/drills/{id}/end    {"verdict", "report", "markdown"} -> {"ended": bool}
    POST /admin/api/drills/{id}/report {"verdict", "report", "markdown"} -> {"updated": bool}
                                       the final report, once the recovery check (which runs
                                       after the end) is done; only over a report that says
                                       ``"recovery": {"pending": true}``

An admin login (the session cookie of POST /admin/login) and the session's CSRF token in the
``X-CSRF-Token`` header, as for every POST. Answers are JSON, refusals too ({"error": ...}).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from web.db.models import Drill, utcnow
from web.deps import CSRF, state_of
from web.drills import (
    DEFAULT_TTL_S,
    HEADER,
    MAX_TTL_S,
    VERDICTS,
    DrillBusy,
    DrillRefused,
    parse_faults,
)
from web.routes.admin_login import is_admin

router = APIRouter(prefix="/admin/api/drills")

MAX_BODY_CHARS = 2_000_000
"""A report is a few kilobytes; refuse anything absurd before parsing it."""


def _refuse(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _body(request: Request) -> dict[str, Any] | JSONResponse:
    if not is_admin(request):
        return _refuse(401, "Log in to /admin first (POST /admin/login with the admin password).")
    raw = await request.body()
    if len(raw) > MAX_BODY_CHARS:
        return _refuse(413, f"The body is over {MAX_BODY_CHARS:,} bytes.")
    try:
        data = json.loads(raw or b"{}")
    except ValueError:
        return _refuse(400, "The body must be JSON.")
    if not isinstance(data, dict):
        return _refuse(400, "The body must be a JSON object.")
    return data


def _drill_json(drill: Drill) -> dict[str, Any]:
    now = utcnow()
    return {
        "id": drill.id,
        "scenario": drill.scenario,
        "faults": json.loads(drill.faults),
        "instance_wide": drill.instance_wide,
        "started_at": drill.started_at.isoformat(),
        "expires_at": drill.expires_at.isoformat(),
        "ended_at": drill.ended_at.isoformat() if drill.ended_at else None,
        "running": drill.ended_at is None and drill.expires_at > now,
        "verdict": drill.verdict,
    }


@router.post("", dependencies=CSRF)
async def start_drill(request: Request) -> JSONResponse:
    data = await _body(request)
    if isinstance(data, JSONResponse):
        return data
    drills = state_of(request).drills
    scenario = data.get("scenario")
    if not isinstance(scenario, str) or not 0 < len(scenario) <= 64:
        return _refuse(400, '"scenario" must be a name of at most 64 characters.')
    ttl = data.get("ttl_s", DEFAULT_TTL_S)
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0 < ttl <= MAX_TTL_S:
        return _refuse(400, f'"ttl_s" must be a number of seconds up to {MAX_TTL_S:g}.')
    instance_wide = data.get("instance_wide", False)
    if not isinstance(instance_wide, bool):
        return _refuse(400, '"instance_wide" must be true or false.')
    try:
        faults = parse_faults(data.get("faults"), drills.tier_names)
    except DrillRefused as exc:
        return _refuse(400, str(exc))
    try:
        drill = await drills.start(scenario, faults, instance_wide=instance_wide, ttl_s=float(ttl))
    except DrillBusy as busy:
        return _refuse(409, f"Drill {busy} is running; end it first (one drill at a time).")
    body = {"id": drill.id, "header": HEADER, "expires_at": drill.expires_at.isoformat()}
    return JSONResponse(body, status_code=201)


@router.get("/{drill_id}")
async def get_drill(request: Request, drill_id: str) -> JSONResponse:
    if not is_admin(request):
        return _refuse(401, "Log in to /admin first.")
    drill = await state_of(request).drills.get(drill_id)
    if drill is None:
        return _refuse(404, "There is no such drill.")
    return JSONResponse(_drill_json(drill))


Outcome = tuple[str, dict[str, Any] | None, str | None]


async def _outcome(
    request: Request, drill_id: str, *, report_required: bool
) -> Outcome | JSONResponse:
    """An end or final-report body, checked: (verdict, report, markdown), or the refusal."""
    data = await _body(request)
    if isinstance(data, JSONResponse):
        return data
    verdict, report, markdown = data.get("verdict"), data.get("report"), data.get("markdown")
    if verdict not in VERDICTS:
        return _refuse(400, f'"verdict" must be one of {", ".join(VERDICTS)}.')
    if not isinstance(report, dict) and (report_required or report is not None):
        return _refuse(400, '"report" must be a JSON object.')
    if markdown is not None and not isinstance(markdown, str):
        return _refuse(400, '"markdown" must be a string.')
    if await state_of(request).drills.get(drill_id) is None:
        return _refuse(404, "There is no such drill.")
    return str(verdict), report, markdown


@router.post("/{drill_id}/end", dependencies=CSRF)
async def end_drill(request: Request, drill_id: str) -> JSONResponse:
    checked = await _outcome(request, drill_id, report_required=False)
    if isinstance(checked, JSONResponse):
        return checked
    ended = await state_of(request).drills.end(drill_id, *checked)
    return JSONResponse({"ended": ended})


@router.post("/{drill_id}/report", dependencies=CSRF)
async def complete_drill(request: Request, drill_id: str) -> JSONResponse:
    checked = await _outcome(request, drill_id, report_required=True)
    if isinstance(checked, JSONResponse):
        return checked
    verdict, report, markdown = checked
    assert report is not None  # required above
    updated = await state_of(request).drills.complete(drill_id, verdict, report, markdown)
    return JSONResponse({"updated": updated})
