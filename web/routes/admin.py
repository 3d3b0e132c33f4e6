"""/admin: the degraded/failed turns page with stats and tier mix, the CSV export, one turn.

    GET /admin                  the dashboard: the tiers that run and those left out for want of
                                a key, stats, tier mix, the turns (filters: see admin_filters)
    GET /admin/degraded.csv     the same list, every page, as CSV
    GET /admin/turns/{id}       one turn: every attempt in order, and its conversation

Every page needs an admin login (AdminDep, web.routes.admin_login) and is sent ``no-store``.
CSV cells that a spreadsheet would run as a formula are defused with a leading quote.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from web.db.admin_queries import (
    ListKind,
    known_tiers,
    problem_turns,
    turn_detail,
    turns_for_export,
    window_stats,
)
from web.db.logged_turns import LoggedTurn
from web.db.session import read_scope
from web.db.tier_mix import tier_mix
from web.deps import SessionsDep, SettingsDep, state_of
from web.errors import NotFound
from web.health import tier_health
from web.lineup import LineUp
from web.providers.base import ErrorKind
from web.routes.admin_chart import build_chart
from web.routes.admin_filters import RANGES, Filters
from web.routes.admin_login import AdminDep
from web.routes.admin_render import NO_STORE, render

router = APIRouter(prefix="/admin")

PER_PAGE = 25
CSV_COLUMNS = (
    "started_at",
    "turn_id",
    "conversation_id",
    "status",
    "tier",
    "provider",
    "model",
    "why",
    "degraded_reason",
    "error_message",
    "attempts",
    "ttft_ms",
    "total_ms",
)


@router.api_route("", methods=["GET", "HEAD"])
@router.api_route("/", methods=["GET", "HEAD"])
async def dashboard(
    request: Request, _admin: AdminDep, sessions: SessionsDep, settings: SettingsDep
) -> Response:
    filters = Filters.from_query(request)
    now = datetime.now(UTC)
    async with read_scope(sessions) as session:
        page = await problem_turns(
            session, filters.turn_filter(now), page=filters.page, per_page=PER_PAGE
        )
        stats = [
            await window_stats(session, now=now, window=timedelta(days=1), label="Last 24 hours"),
            await window_stats(session, now=now, window=timedelta(days=7), label="Last 7 days"),
        ]
        hourly = await tier_mix(
            session, now=now, window=timedelta(days=1), bucket=timedelta(hours=1)
        )
        daily = await tier_mix(session, now=now, window=timedelta(days=7), bucket=timedelta(days=1))
        tiers = await known_tiers(session)
    configured = [t.name for t in settings.tiers]
    return render(
        request,
        "admin/dashboard.html",
        {
            "page": page,
            "lineup": LineUp.of(settings),
            "stats": stats,
            "charts": [
                build_chart(hourly, "Tier mix, last 24 hours (per hour)"),
                build_chart(daily, "Tier mix, last 7 days (per day)"),
            ],
            "filters": filters,
            "tier_options": configured + [t for t in tiers if t not in configured],
            "reason_options": [k.value for k in ErrorKind],
            "kind_options": [k.value for k in ListKind],
            "range_options": ["all", *RANGES],
            "page_url": lambda n: f"/admin?{filters.query(page=n)}",
            "csv_url": f"/admin/degraded.csv?{filters.query(page=None)}",
            "breakers": await tier_health(state_of(request).chain),
        },
    )


@router.get("/degraded.csv")
async def degraded_csv(request: Request, _admin: AdminDep, sessions: SessionsDep) -> Response:
    filters = Filters.from_query(request)
    async with read_scope(sessions) as session:
        rows = await turns_for_export(session, filters.turn_filter(datetime.now(UTC)))
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return StreamingResponse(
        _csv_lines(rows),
        media_type="text/csv; charset=utf-8",
        headers={
            **NO_STORE,
            "Content-Disposition": f'attachment; filename="understudy-{filters.kind}-{stamp}.csv"',
        },
    )


@router.api_route("/turns/{turn_id}", methods=["GET", "HEAD"])
async def turn_page(
    request: Request, turn_id: str, _admin: AdminDep, sessions: SessionsDep
) -> Response:
    async with read_scope(sessions) as session:
        detail = await turn_detail(session, turn_id[:64])
    if detail is None:
        raise NotFound("No turn with this id.")
    return render(request, "admin/turn.html", {"detail": detail, "turn": detail.turn})


def _csv_cell(value: object) -> str:
    text = "" if value is None else str(value)
    # Spreadsheets run cells that start like a formula; provider error text is not ours.
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


async def _csv_lines(rows: tuple[LoggedTurn, ...]) -> AsyncIterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow(
            [
                _csv_cell(v)
                for v in (
                    row.started_at.isoformat(),
                    row.id,
                    row.conversation_id,
                    row.status,
                    row.tier,
                    row.provider,
                    row.model,
                    row.why,
                    row.degraded_reason,
                    row.error_message,
                    row.attempt_count,
                    None if row.ttft_ms is None else round(row.ttft_ms),
                    None if row.total_ms is None else round(row.total_ms),
                )
            ]
        )
        if buffer.tell() > 64_000:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
