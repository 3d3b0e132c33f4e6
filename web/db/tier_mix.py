"""The tier mix over time: finished turns per hour or day, split by the tier that answered.

The data behind the admin page's chart (laid out in web.routes.admin_chart): users' turns only, a
drill's are not in it (web.db.logged_turns.USER_TURNS). Buckets are UTC
hours or days, computed in the database: SQLite and PostgreSQL spell that differently.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from web.db.logged_turns import FAILED, USER_TURNS
from web.db.models import Turn
from web.status import FINAL_STATUSES

FAILED_SERIES = "failed"


@dataclass(frozen=True)
class MixBucket:
    start: datetime
    counts: tuple[tuple[str, int], ...]
    """(tier or "failed", turns), in the chart's series order; zero counts included."""

    @property
    def total(self) -> int:
        return sum(n for _, n in self.counts)


@dataclass(frozen=True)
class TierMix:
    series: tuple[str, ...]
    buckets: tuple[MixBucket, ...]
    bucket: timedelta


async def tier_mix(
    session: AsyncSession, *, now: datetime, window: timedelta, bucket: timedelta
) -> TierMix:
    """Finished turns per time bucket, split by the tier that answered (or failed)."""
    if bucket not in (timedelta(hours=1), timedelta(days=1)):
        raise ValueError("bucket must be one hour or one day")
    hourly = bucket == timedelta(hours=1)
    now = now.astimezone(UTC)
    first = _floor(now - window + bucket, hourly)
    key = _bucket_key(session, hourly).label("bucket")
    series_key = case((FAILED, FAILED_SERIES), else_=Turn.tier).label("series")
    rows = await session.execute(
        select(key, series_key, func.min(Turn.tier_index), func.count())
        .where(
            Turn.started_at >= first,
            Turn.started_at <= now,
            Turn.status.in_(FINAL_STATUSES),
            USER_TURNS,
            or_(Turn.tier.is_not(None), FAILED),
        )
        .group_by(key, series_key)
    )
    counts: dict[datetime, dict[str, int]] = defaultdict(dict)
    order: dict[str, int] = {}
    for raw_key, series, tier_index, count in rows:
        start = _parse_bucket(str(raw_key))
        counts[start][series] = count
        order[series] = 10_000 if series == FAILED_SERIES else (tier_index or 0)
    series_order = tuple(sorted(order, key=lambda s: (order[s], s)))
    buckets = []
    start = first
    while start <= now:
        got = counts.get(start, {})
        buckets.append(MixBucket(start, tuple((s, got.get(s, 0)) for s in series_order)))
        start += bucket
    return TierMix(series_order, tuple(buckets), bucket)


def _bucket_key(session: AsyncSession, hourly: bool) -> ColumnElement[str]:
    """The UTC hour or day of Turn.started_at as text: '2026-05-01 13' or '2026-05-01'."""
    if session.get_bind().dialect.name == "postgresql":
        fmt = "YYYY-MM-DD HH24" if hourly else "YYYY-MM-DD"
        return func.to_char(func.timezone("UTC", Turn.started_at), fmt)
    # SQLite keeps UTC text ('2026-05-01 13:04:05.123456'), which strftime reads.
    return func.strftime("%Y-%m-%d %H" if hourly else "%Y-%m-%d", Turn.started_at)


def _parse_bucket(raw: str) -> datetime:
    fmt = "%Y-%m-%d %H" if " " in raw else "%Y-%m-%d"
    return datetime.strptime(raw, fmt).replace(tzinfo=UTC)


def _floor(moment: datetime, hourly: bool) -> datetime:
    if hourly:
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)
