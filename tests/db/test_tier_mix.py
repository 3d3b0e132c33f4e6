from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from web.db.session import read_scope
from web.db.tier_mix import tier_mix

from support.database import BACKENDS
from support.factories import NOW, turn

Factory = async_sessionmaker[AsyncSession]


@BACKENDS
async def test_tier_mix_per_hour_and_per_day(factory: Factory) -> None:
    for kind, ago in [
        ("ok", timedelta(hours=1)),
        ("haiku", timedelta(hours=1)),
        ("failed", timedelta(hours=3)),
        ("openai", timedelta(days=2)),
    ]:
        await turn(factory, kind, ago=ago)
    async with read_scope(factory) as session:
        hourly = await tier_mix(
            session, now=NOW, window=timedelta(days=1), bucket=timedelta(hours=1)
        )
        daily = await tier_mix(session, now=NOW, window=timedelta(days=7), bucket=timedelta(days=1))
    assert hourly.series == ("sonnet", "haiku", "failed")
    assert len(hourly.buckets) == 24
    by_start = {b.start: dict(b.counts) for b in hourly.buckets}
    hour = (NOW - timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    three = (NOW - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    assert by_start[hour] == {"sonnet": 1, "haiku": 1, "failed": 0}
    assert by_start[three] == {"sonnet": 0, "haiku": 0, "failed": 1}
    assert sum(b.total for b in hourly.buckets) == 3

    assert daily.series == ("sonnet", "haiku", "openai", "failed")
    assert len(daily.buckets) == 7
    assert sum(b.total for b in daily.buckets) == 4
    two_days = (NOW - timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
    assert dict(next(b for b in daily.buckets if b.start == two_days).counts)["openai"] == 1
