"""Drills for the admin's tests, written as rows (no drill runs): a drill, and its turns flagged.

The rows follow the contract of issue 11 (migration 0004): a drill runs until it ends
(``ended_at``, with its verdict and reports) or expires (``expires_at``); its turns carry its id.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from web.db.models import Drill, Turn
from web.db.session import session_scope

Factory = async_sessionmaker[AsyncSession]
PRIMARY_DOWN = [{"tier": "sonnet", "kind": "overloaded"}]


async def add_drill(
    factory: Factory,
    *,
    started_at: datetime,
    scenario: str = "primary-down",
    verdict: str | None = "pass",
    lasted: timedelta | None = timedelta(minutes=4, seconds=30),
    ttl: timedelta = timedelta(hours=1),
    instance_wide: bool = False,
    faults: object = PRIMARY_DOWN,
    markdown: str | None = "# Drill\n\nThe hypothesis held.",
    report: dict[str, object] | None = None,
) -> str:
    """A drill that started at ``started_at`` and ended ``lasted`` later with ``verdict``
    (``lasted=None``: it never ended, no verdict and no report)."""
    ended = lasted is not None
    row = Drill(
        scenario=scenario,
        faults=faults if isinstance(faults, str) else json.dumps(faults),
        instance_wide=instance_wide,
        started_at=started_at,
        expires_at=started_at + ttl,
        ended_at=started_at + lasted if lasted is not None else None,
        verdict=verdict if ended else None,
        report=json.dumps(report or {"scenario": scenario, "verdict": verdict}) if ended else None,
        markdown=markdown if ended else None,
    )
    async with session_scope(factory) as session:
        session.add(row)
        await session.flush()
        return row.id


async def flag(factory: Factory, drill_id: str, turn_ids: Sequence[str]) -> None:
    """Make these turns the drill's, as the chat routes do for a request with its header."""
    async with session_scope(factory) as session:
        await session.execute(update(Turn).where(Turn.id.in_(turn_ids)).values(drill_id=drill_id))
