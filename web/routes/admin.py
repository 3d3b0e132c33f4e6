"""/admin: the degraded/failed turns page with stats and tier mix, the CSV export, one turn.

    GET /admin                  the dashboard: the tiers that run and those left out for want of
                                a key, the last drill (and a warning when one is overdue), stats,
                                the deferral queue, tier mix, the turns (filters: degraded,
                                failed, both, queued, delayed, drill; see admin_filters)
    GET /admin/degraded.csv     the same list, every page, as CSV
    GET /admin/turns/{id}       one turn: its deferred job if it has one, every attempt in order,
                                and its conversation

Ages and waits are measured from ``utc_now`` (a dependency, so tests fix the moment). Every
figure is of users' turns: drills' turns are counted apart (web.db.admin_queries).

Every figure comes from the database or the settings, the same whichever process serves the page,
but the circuit breakers: shared through Redis with UNDERSTUDY_REDIS_URL, else this process's
(said on the page).

Every page needs an admin login (AdminDep, web.routes.admin_login) and is sent ``no-store``.
CSV cells that a spreadsheet would run as a formula are defused with a leading quote.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from web.db.admin_drills import standing
from web.db.admin_queries import (
    ListKind,
    known_tiers,
    problem_turns,
    turn_detail,
    turns_for_export,
    window_stats,
)
from web.db.admin_queue import JobView, jobs_of, queue_summary
from web.db.logged_turns import LoggedTurn
from web.db.session import read_scope
from web.db.tier_mix import tier_mix
from web.deps import SessionsDep, SettingsDep, state_of
from web.errors import NotFound
from web.health import tier_health
from web.lineup import LineUp
from web.providers.base import ErrorKind
from web.routes.admin_chart import build_chart
from web.routes.admin_deferral import attempt_rows
from web.routes.admin_drills import WORDS as DRILL_WORDS
from web.routes.admin_filters import RANGES, Filters
from web.routes.admin_login import AdminDep
from web.routes.admin_render import NO_STORE, NowDep, clock_for, render
from web.routes.admin_render import utc_now as utc_now  # where tests override the moment

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
    "deferral_backend",
    "queued_at",
    "wait_ms",
)


@router.api_route("", methods=["GET", "HEAD"])
@router.api_route("/", methods=["GET", "HEAD"])
async def dashboard(
    request: Request, _admin: AdminDep, sessions: SessionsDep, settings: SettingsDep, now: NowDep
) -> Response:
    filters = Filters.from_query(request)
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
        queue = await queue_summary(session)
        drill_standing = await standing(session)
    configured = [t.name for t in settings.tiers]
    return render(
        request,
        "admin/dashboard.html",
        {
            "page": page,
            "lineup": LineUp.of(settings),
            "stats": stats,
            "queue": queue,
            "drill_standing": drill_standing,
            "now": now,
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
            # In Redis they are every process's; else this process's, and the page says so.
            "breakers_of_process": None if settings.redis_url else os.getpid(),
            **DRILL_WORDS,
        },
    )


@router.get("/degraded.csv")
async def degraded_csv(
    request: Request, _admin: AdminDep, sessions: SessionsDep, now: NowDep
) -> Response:
    filters = Filters.from_query(request)
    async with read_scope(sessions) as session:
        rows = await turns_for_export(session, filters.turn_filter(now))
        jobs = await jobs_of(session, [r.id for r in rows])
    stamp = now.strftime("%Y%m%d-%H%M%S")
    return StreamingResponse(
        _csv_lines(rows, jobs),
        media_type="text/csv; charset=utf-8",
        headers={
            **NO_STORE,
            "Content-Disposition": f'attachment; filename="understudy-{filters.kind}-{stamp}.csv"',
        },
    )


@router.api_route("/turns/{turn_id}", methods=["GET", "HEAD"])
async def turn_page(
    request: Request, turn_id: str, _admin: AdminDep, sessions: SessionsDep, now: NowDep
) -> Response:
    async with read_scope(sessions) as session:
        detail = await turn_detail(session, turn_id[:64])
    if detail is None:
        raise NotFound("No turn with this id.")
    return render(
        request,
        "admin/turn.html",
        {
            "detail": detail,
            "turn": detail.turn,
            "job": detail.job,
            "attempt_rows": attempt_rows(detail.turn.attempts),
            "started": clock_for(a.started_at for a in detail.turn.attempts),
            "now": now,
        },
    )


def _csv_cell(value: object) -> str:
    text = "" if value is None else str(value)
    # Spreadsheets run cells that start like a formula; provider error text is not ours.
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


def _wait_ms(job: JobView | None) -> int | None:
    """A finished job's wait; an open one has none yet (its age would depend on the export)."""
    if job is None or job.finished_at is None:
        return None
    return round((job.finished_at - job.queued_at).total_seconds() * 1000)


async def _csv_lines(
    rows: tuple[LoggedTurn, ...], jobs: Mapping[str, JobView]
) -> AsyncIterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        job = jobs.get(row.id)
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
                    None if job is None else job.backend,
                    None if job is None else job.queued_at.isoformat(),
                    _wait_ms(job),
                )
            ]
        )
        if buffer.tell() > 64_000:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
