"""The processes table: who serves the app now, and the sweep of the turns of those who died.

Every statement here is safe to run in every process at once: a lease is one row a process
writes for itself, and the sweep is one conditional UPDATE (only live turns change, so a second
sweep of the same dead process changes nothing) followed by one DELETE of the dead rows.

What "dead" means is :mod:`web.processes`' (its module docstring); the sweep is handed the ids the
caller found dead on its own machine (the pid checks a database cannot make) and the moment it
calls "now".
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, or_, select, update

from web.db.models import Process, Turn
from web.db.session import Factory, read_scope, session_scope
from web.db.turnlog import interrupt
from web.status import LIVE_STATUSES


@dataclass(frozen=True)
class ProcessRow:
    id: str
    host: str
    pid: int
    started_at: datetime
    lease_until: datetime


@dataclass(frozen=True)
class Swept:
    """What one sweep did: turns interrupted, rows of dead processes deleted."""

    turns: int = 0
    processes: int = 0
    orphans: int = 0
    """This process's own turns whose outcome was never written (web.processes)."""


async def register(
    factory: Factory, *, process_id: str, host: str, pid: int, now: datetime, until: datetime
) -> None:
    async with session_scope(factory) as session:
        await session.execute(
            insert(Process).values(
                id=process_id, host=host, pid=pid, started_at=now, beat_at=now, lease_until=until
            )
        )


async def renew(
    factory: Factory,
    *,
    process_id: str,
    host: str,
    pid: int,
    started_at: datetime,
    now: datetime,
    until: datetime,
) -> bool:
    """Push the lease on; False when the row was gone (a survivor took this process for dead
    while it could not beat) and had to be written again."""
    async with session_scope(factory) as session:
        renewed = await session.execute(
            update(Process)
            .where(Process.id == process_id)
            .values(beat_at=now, lease_until=until)
            .execution_options(synchronize_session=False)
        )
        if renewed.rowcount == 1:  # type: ignore[attr-defined]
            return True
        await session.execute(
            insert(Process).values(
                id=process_id,
                host=host,
                pid=pid,
                started_at=started_at,
                beat_at=now,
                lease_until=until,
            )
        )
        return False


async def unregister(factory: Factory, process_id: str) -> None:
    async with session_scope(factory) as session:
        await session.execute(delete(Process).where(Process.id == process_id))


async def on_host(factory: Factory, host: str) -> list[ProcessRow]:
    """The processes that announced themselves on ``host`` (for the pid checks)."""
    async with read_scope(factory) as session:
        rows = await session.execute(
            select(
                Process.id, Process.host, Process.pid, Process.started_at, Process.lease_until
            ).where(Process.host == host)
        )
        return [ProcessRow(*row) for row in rows]


async def processes(factory: Factory) -> list[ProcessRow]:
    """Every announced process, oldest first."""
    async with read_scope(factory) as session:
        rows = await session.execute(
            select(
                Process.id, Process.host, Process.pid, Process.started_at, Process.lease_until
            ).order_by(Process.started_at, Process.id)
        )
        return [ProcessRow(*row) for row in rows]


async def sweep(
    factory: Factory,
    *,
    me: str,
    now: datetime,
    dead: Collection[str] = (),
    unowned: bool = False,
) -> Swept:
    """Interrupt the live turns of dead processes and delete their rows, in one transaction.

    Dead: a lease that ran out before ``now``, no row at all, or an id in ``dead``. ``me`` is
    never dead here (this process's own turns are :func:`interrupt_own`'s). ``unowned``: also
    the turns with no process (made before processes were recorded), which only a start sweeps.
    """
    alive = select(Process.id).where(Process.lease_until >= now, Process.id.not_in(dead))
    owned_by_dead = Turn.process_id.is_not(None) & (Turn.process_id != me)
    owned_by_dead = owned_by_dead & or_(Turn.process_id.not_in(alive), Turn.process_id.in_(dead))
    condition = or_(owned_by_dead, Turn.process_id.is_(None)) if unowned else owned_by_dead
    async with session_scope(factory) as session:
        turns = await session.execute(interrupt(condition))
        rows = await session.execute(
            delete(Process)
            .where(Process.id != me, or_(Process.lease_until < now, Process.id.in_(dead)))
            .execution_options(synchronize_session=False)
        )
    return Swept(
        turns=int(turns.rowcount),  # type: ignore[attr-defined]
        processes=int(rows.rowcount),  # type: ignore[attr-defined]
    )


async def own_live_turns(factory: Factory, me: str, *, started_before: datetime) -> list[str]:
    """Live turns of this process that started before ``started_before``, by id."""
    async with read_scope(factory) as session:
        ids = await session.scalars(
            select(Turn.id).where(
                Turn.process_id == me,
                Turn.status.in_(LIVE_STATUSES),
                Turn.started_at < started_before,
            )
        )
        return list(ids)


async def interrupt_own(factory: Factory, turn_ids: Sequence[str]) -> int:
    """Interrupt these turns if they are still live (this process's orphans)."""
    if not turn_ids:
        return 0
    async with session_scope(factory) as session:
        result = await session.execute(interrupt(Turn.id.in_(turn_ids)))
        return int(result.rowcount)  # type: ignore[attr-defined]
