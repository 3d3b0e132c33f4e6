"""Drills on a running instance: `understudy drill` starts one through the admin API, sends its
messages with the drill's header, and ends it (web.drill_faults says what a fault does).

- One drill at a time per instance. It is a row in ``drills`` (so every process sees it); its
  faults apply to the turns that carry its header (``X-Understudy-Drill``), which are flagged
  with its id in the turn log and kept out of the users' figures; with ``instance_wide`` they
  apply to every turn while it runs (a staging drill).
- A drill always restores: its runner ends it (on success, abort and Ctrl-C alike), and a drill
  that is never ended stops applying its faults at ``expires_at`` (at most ``MAX_TTL_S``).
- A drill of its own turns does not report to the breakers (web.chain): it must not open the
  primary's breaker for real users.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from web.db.models import Drill, new_id, utcnow
from web.db.session import Factory, read_scope, session_scope
from web.drill_faults import MAX_AFTER_TOKENS, MAX_DELAY_S, DrillFault, DrillFaults, FaultKind
from web.settings import Settings
from web.sim import REVOKED_KEY
from web.tiers import provider_with_key

log = logging.getLogger(__name__)

HEADER = "X-Understudy-Drill"
MAX_TTL_S = 6 * 3600.0
DEFAULT_TTL_S = 3600.0
RECOVERY_WINDOW_S = 900.0
"""After its end, a drill's header still flags turns (without faults) this long: its recovery
check's messages are the drill's, not users'."""
CACHE_S = 1.0
"""How long a process trusts what it last read of the running drill (a new drill, or its end,
reaches every process within this)."""
VERDICTS = ("pass", "fail", "aborted", "error")


class DrillRefused(ValueError):
    """A drill request that cannot be used; the message says why."""


class DrillBusy(Exception):
    """Another drill is running."""


def parse_faults(raw: Any, tiers: Sequence[str]) -> tuple[DrillFault, ...]:
    if not isinstance(raw, list) or not raw:
        raise DrillRefused('"faults" must be a non-empty list of {"tier", "kind", ...}.')
    faults: list[DrillFault] = []
    for item in raw:
        if not isinstance(item, dict):
            raise DrillRefused(
                'each fault must be an object like {"tier": "sonnet", "kind": "hang"}.'
            )
        tier = item.get("tier")
        if not isinstance(tier, str) or tier not in tiers:
            raise DrillRefused(f"unknown tier {tier!r}; the chain has {', '.join(tiers)}.")
        try:
            kind = FaultKind(str(item.get("kind")))
        except ValueError:
            kinds = ", ".join(k.value for k in FaultKind)
            raise DrillRefused(
                f"unknown fault kind {item.get('kind')!r}; use one of {kinds}."
            ) from None
        delay = item.get("delay_s", 0.0)
        after = item.get("after_tokens", 0)
        if (
            isinstance(delay, bool)
            or not isinstance(delay, int | float)
            or not 0 <= delay <= MAX_DELAY_S
        ):
            raise DrillRefused(f"delay_s must be a number of seconds from 0 to {MAX_DELAY_S:g}.")
        if (
            isinstance(after, bool)
            or not isinstance(after, int)
            or not 0 <= after <= MAX_AFTER_TOKENS
        ):
            raise DrillRefused(f"after_tokens must be a whole number from 0 to {MAX_AFTER_TOKENS}.")
        if any(f.tier == tier for f in faults):
            raise DrillRefused(f"tier {tier!r} has two faults; give it one.")
        faults.append(DrillFault(tier, kind, float(delay), after))
    return tuple(faults)


@dataclass(frozen=True)
class Running:
    id: str
    faults: tuple[DrillFault, ...]
    instance_wide: bool


class Drills:
    def __init__(
        self, sessions: Factory, settings: Settings, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._clock = clock
        self._read_at: float | None = None
        self._reading = asyncio.Lock()
        self._running: Running | None = None
        self._faults: DrillFaults | None = None

    @property
    def tier_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self._settings.tiers)

    async def start(
        self, scenario: str, faults: Sequence[DrillFault], *, instance_wide: bool, ttl_s: float
    ) -> Drill:
        now = utcnow()
        async with session_scope(self._sessions) as session:
            busy = await session.scalar(select(Drill.id).where(*_running_at(now)).limit(1))
            if busy is not None:
                raise DrillBusy(busy)
            drill = Drill(
                id=new_id(),
                scenario=scenario,
                faults=json.dumps([f.to_json() for f in faults]),
                instance_wide=instance_wide,
                started_at=now,
                expires_at=now + timedelta(seconds=min(ttl_s, MAX_TTL_S)),
            )
            session.add(drill)
        log.warning(
            "drill %s started: %s, %s, faults %s",
            drill.id,
            scenario,
            "instance-wide" if instance_wide else "drill turns only",
            drill.faults,
        )
        await self._forget()
        return drill

    async def end(
        self, drill_id: str, verdict: str, report: Mapping[str, Any] | None, markdown: str | None
    ) -> bool:
        """The faults stop; the report is kept. False if it had ended already (nothing changes)."""
        async with session_scope(self._sessions) as session:
            result = await session.execute(
                update(Drill)
                .where(Drill.id == drill_id, Drill.ended_at.is_(None))
                .values(
                    ended_at=utcnow(),
                    verdict=verdict,
                    report=json.dumps(report) if report is not None else None,
                    markdown=markdown,
                )
                .execution_options(synchronize_session=False)
            )
            ended = bool(result.rowcount)  # type: ignore[attr-defined]
        if ended:
            log.warning("drill %s ended: %s", drill_id, verdict)
        await self._forget()
        await self._refresh()
        return ended

    async def get(self, drill_id: str) -> Drill | None:
        async with read_scope(self._sessions) as session:
            return await session.get(Drill, drill_id)

    async def faults_for(self, drill_id: str | None) -> tuple[str | None, DrillFaults | None]:
        """For a new turn: (the drill id to flag it with, the faults it gets). A header naming a
        drill that ended less than ``RECOVERY_WINDOW_S`` ago flags the turn without faults (the
        drill's recovery check); any other header is ignored (an ordinary turn)."""
        await self._refresh()
        running, faults = self._running, self._faults
        if running is not None and faults is not None and drill_id == running.id:
            return running.id, faults
        flag = await self._recently_ended(drill_id) if drill_id else None
        if running is None or faults is None:
            return flag, None
        return flag, faults if running.instance_wide else None

    async def _recently_ended(self, drill_id: str) -> str | None:
        since = utcnow() - timedelta(seconds=RECOVERY_WINDOW_S)
        async with read_scope(self._sessions) as session:
            found = await session.scalar(
                select(Drill.id).where(Drill.id == drill_id, Drill.ended_at > since)
            )
        return found

    async def complete(
        self, drill_id: str, verdict: str, report: Mapping[str, Any], markdown: str | None
    ) -> bool:
        """The final report of an ended drill whose stored one waits for its recovery check
        (``report.recovery.pending``): it replaces it, once. False otherwise (nothing changes)."""
        async with session_scope(self._sessions) as session:
            drill = await session.get(Drill, drill_id, with_for_update=True)
            if drill is None or drill.ended_at is None or not _pending(drill.report):
                return False
            drill.verdict = verdict
            drill.report = json.dumps(report)
            drill.markdown = markdown
        log.warning("drill %s completed after its recovery check: %s", drill_id, verdict)
        return True

    async def _refresh(self) -> None:
        # One read at a time: turns that arrive together wait for the read under way instead of
        # taking what was known before it (a drill's first turns would miss its faults).
        async with self._reading:
            now = self._clock()
            if self._read_at is not None and now - self._read_at < CACHE_S:
                return
            async with read_scope(self._sessions) as session:
                row = await session.scalar(select(Drill).where(*_running_at(utcnow())).limit(1))
            self._read_at = now
            running = None
            if row is not None:
                faults = tuple(
                    DrillFault(
                        f["tier"],
                        FaultKind(f["kind"]),
                        f.get("delay_s", 0.0),
                        f.get("after_tokens", 0),
                    )
                    for f in json.loads(row.faults)
                )
                running = Running(row.id, faults, row.instance_wide)
            if running == self._running:
                return
            await self._close_revoked()
            self._running = running
            self._faults = self._build(running) if running is not None else None

    async def _forget(self) -> None:
        """The next turn reads the drill again; a read under way (of what was before) ends
        first, so it cannot mark its stale answer fresh."""
        async with self._reading:
            self._read_at = None

    def _build(self, running: Running) -> DrillFaults:
        faults = DrillFaults(running.id, {f.tier: f for f in running.faults}, running.instance_wide)
        configs = {t.name: t for t in self._settings.tiers}
        for fault in running.faults:
            if fault.kind is FaultKind.REVOKED_KEY and fault.tier in configs:
                faults.revoked[fault.tier] = provider_with_key(
                    self._settings, configs[fault.tier], REVOKED_KEY
                )
        return faults

    async def _close_revoked(self) -> None:
        if self._faults is not None:
            for provider in self._faults.revoked.values():
                await provider.aclose()

    async def aclose(self) -> None:
        await self._close_revoked()
        self._faults = None


def _pending(report: str | None) -> bool:
    try:
        data = json.loads(report or "{}")
    except ValueError:
        return False
    recovery = data.get("recovery") if isinstance(data, dict) else None
    return isinstance(recovery, dict) and recovery.get("pending") is True


def _running_at(now: datetime) -> tuple[Any, ...]:
    return (Drill.ended_at.is_(None), Drill.expires_at > now)
