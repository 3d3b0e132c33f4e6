"""Read a live app's PostgreSQL database from a test, one short connection per query."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg


def pg_rows(database_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    """``database_url`` is the app's SQLAlchemy URL (postgresql+asyncpg://...)."""
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)

    async def query() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return asyncio.run(query())
