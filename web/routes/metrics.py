"""GET /metrics: the Prometheus text format, for loopback or the metrics token (web.metrics_access).

What it exports and when each figure is taken is web.metrics's docstring. A scrape costs two
small queries (the open deferred jobs, the last passing drill) and a read of the breakers, made
by the process that answers; in multiprocess mode (PROMETHEUS_MULTIPROC_DIR), also a read of
every process's metric files, whichever process answers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse, Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from web.db.admin_queue import queue_summary
from web.db.models import Drill
from web.db.session import read_scope
from web.deps import state_of
from web.health import tier_health
from web.metrics import CONTENT_TYPE, Sample
from web.metrics_access import MetricsAccess
from web.state import AppState

router = APIRouter()

PASS = "pass"
"""A drill's verdict when every hypothesis held (the drills table's ``verdict``)."""


def utc_now() -> datetime:
    """The moment of the scrape (a dependency, so tests fix it)."""
    return datetime.now(UTC)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, now: Annotated[datetime, Depends(utc_now)]) -> Response:
    state = state_of(request)
    refused = MetricsAccess(state.settings.metrics_token).refusal(
        request.client.host if request.client else None,
        request.headers.get("host"),
        request.headers.get("authorization"),
    )
    if refused is not None:
        headers = {"WWW-Authenticate": "Bearer"} if refused.status == 401 else None
        return PlainTextResponse(refused.message + "\n", refused.status, headers=headers)
    body = state.runner.metrics.render(await sample(state, now))
    return Response(body, media_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})


async def sample(state: AppState, now: datetime) -> Sample:
    health = await tier_health(state.chain)
    async with read_scope(state.sessions) as session:
        queue = await queue_summary(session)
        last_pass = await last_drill_pass(session)
    age = queue.oldest_age(now)
    return Sample(
        breakers=[(h.tier.name, h.state) for h in health],
        queue_depth=queue.depth,
        queue_oldest_age_s=age.total_seconds() if age is not None else 0.0,
        drill_last_pass=last_pass,
    )


async def last_drill_pass(session: AsyncSession) -> datetime | None:
    """When the last drill that passed ended."""
    return await session.scalar(select(func.max(Drill.ended_at)).where(Drill.verdict == PASS))
