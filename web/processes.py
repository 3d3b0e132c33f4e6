"""This process's lease: how the processes sharing one database know which of them are alive.

A process announces itself at start with a row in ``processes`` (web.db.processes): a random id,
its host and pid, and ``lease_until`` = now + UNDERSTUDY_LEASE_S. Every turn it opens carries that
id (``turns.process_id``). A heartbeat renews the lease every third of it and sweeps:

- The live turns of dead processes are marked interrupted, with the text of their last
  checkpoint, by whichever survivor sweeps first (every process sweeps; the UPDATE only changes
  live turns, so two sweeps at once do the work once). Dead means: its lease has run out, or it
  has no row, or it ran on this machine and its pid no longer exists, or it ran on this machine
  under this process's own pid with another id (a restarted container reuses pid 1). The pid
  checks are why a server restarted after a crash interrupts its predecessor's turns at once,
  not one lease later.
- This process's own live turns that its runner no longer runs and that started longer ago than
  a turn may take (``orphan_after_s``: the turn deadline, the runner's grace and one lease) are
  interrupted too: their outcome could not be written, and they would hold their conversation.
- At start only: turns with no process at all (made before processes were recorded).

A start never touches the live turns of another live process. A database error in a beat is
logged and the next beat tries again: the app keeps serving (if the errors last longer than a
lease, the others take this process for dead, and its next beat announces it again).
At a clean shutdown the row is deleted after the runner has recorded its own turns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from web.db import processes as db
from web.db.models import utcnow
from web.db.session import Factory

log = logging.getLogger(__name__)

BEATS_PER_LEASE = 3
"""A lease is renewed this many times before it would run out: two beats can fail in a row."""


def pid_exists(pid: int) -> bool:
    """Whether a process with this pid exists on this machine (whoever owns it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ProcessLease:
    def __init__(
        self,
        sessions: Factory,
        *,
        lease_s: float,
        orphan_after_s: float,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        host: str | None = None,
        pid: int | None = None,
        alive: Callable[[int], bool] = pid_exists,
    ) -> None:
        """``clock``, ``sleep``, ``host``, ``pid`` and ``alive`` (the pid check) are injectable:
        tests step time and play several processes in one."""
        self.id = uuid.uuid4().hex
        self.host = host or socket.gethostname()
        self.pid = pid or os.getpid()
        self.lease = timedelta(seconds=lease_s)
        self.orphan_after = timedelta(seconds=orphan_after_s)
        self._sessions = sessions
        self._clock = clock
        self._sleep = sleep
        self._alive = alive
        self._running: Callable[[str], bool] = lambda _turn_id: False
        self._task: asyncio.Task[None] | None = None
        self.started_at: datetime | None = None

    async def start(self) -> db.Swept:
        """Announce this process, then sweep as a start does (turns with no process too)."""
        now = self._clock()
        await db.register(
            self._sessions,
            process_id=self.id,
            host=self.host,
            pid=self.pid,
            now=now,
            until=now + self.lease,
        )
        self.started_at = now
        log.info("process %s (pid %d on %s) announced", self.id, self.pid, self.host)
        return await self.sweep(unowned=True)

    def beat_in_background(self, running: Callable[[str], bool]) -> None:
        """Renew and sweep every third of the lease; ``running``: whether this process's runner
        still runs a turn (the others of its live turns are orphans once old enough)."""
        self._running = running
        self._task = asyncio.create_task(self._loop(), name="process-lease")

    async def beat(self) -> db.Swept:
        """One heartbeat: renew the lease, sweep the dead, interrupt this process's orphans."""
        now = self._clock()
        assert self.started_at is not None, "start() announces the process first"
        renewed = await db.renew(
            self._sessions,
            process_id=self.id,
            host=self.host,
            pid=self.pid,
            started_at=self.started_at,
            now=now,
            until=now + self.lease,
        )
        if not renewed:
            log.warning("process %s: its lease had been taken for dead; announced again", self.id)
        swept = await self.sweep()
        candidates = await db.own_live_turns(
            self._sessions, self.id, started_before=now - self.orphan_after
        )
        orphans = [turn_id for turn_id in candidates if not self._running(turn_id)]
        interrupted = await db.interrupt_own(self._sessions, orphans)
        if interrupted:
            log.warning(
                "marked %d turn(s) whose outcome was never written interrupted", interrupted
            )
        return db.Swept(swept.turns, swept.processes, orphans=interrupted)

    async def sweep(self, *, unowned: bool = False) -> db.Swept:
        now = self._clock()
        dead = [
            row.id
            for row in await db.on_host(self._sessions, self.host)
            if row.id != self.id and (row.pid == self.pid or not self._alive(row.pid))
        ]
        swept = await db.sweep(self._sessions, me=self.id, now=now, dead=dead, unowned=unowned)
        if swept.turns:
            log.warning(
                "marked %d unfinished turn(s) of dead processes as interrupted", swept.turns
            )
        return swept

    async def close(self) -> None:
        """Stop beating and delete this process's row (after the runner recorded its turns)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await db.unregister(self._sessions, self.id)
        except Exception:
            # Its lease runs out anyway: a survivor sweeps its row one lease later.
            log.exception("process %s: could not delete its row at shutdown", self.id)

    async def _loop(self) -> None:
        interval_s = self.lease.total_seconds() / BEATS_PER_LEASE
        while True:
            await self._sleep(interval_s)
            try:
                await self.beat()
            except Exception:
                log.exception("process %s: heartbeat failed; trying again next beat", self.id)
