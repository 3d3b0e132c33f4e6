"""The registry the simulator consults on every model request: the faults set, by id, in order
(see :mod:`web.sim.faults` for the kinds and how each becomes a :class:`~web.sim.faults.Plan`)."""

from __future__ import annotations

import itertools
import threading
import time

from web.sim.faults import KINDS, Clock, Fault, FaultOutOfBounds, Plan, parse_fault
from web.sim.limits import MAX_FAULTS


class FaultRegistry:
    """Faults by id, in the order they were set. Safe to share across threads.

    A flap's ``down_s`` is measured on ``clock``; a test passes a clock it moves by hand, so a
    flap heals exactly when the test says and not when a slow machine happens to get there.
    """

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._faults: dict[str, Fault] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    @property
    def clock(self) -> Clock:
        return self._clock

    def add(self, data: object) -> Fault:
        fault = parse_fault(data, "")
        with self._lock:
            self._purge(self._clock())
            if len(self._faults) >= MAX_FAULTS:
                raise FaultOutOfBounds(
                    f"at most {MAX_FAULTS} faults can be set at once; delete some first"
                )
            fault.id = f"f{next(self._ids)}"
            fault.set_at = self._clock()
            self._faults[fault.id] = fault
            return fault

    def list(self) -> list[Fault]:
        with self._lock:
            self._purge(self._clock())
            return list(self._faults.values())

    def remove(self, fault_id: str) -> bool:
        with self._lock:
            return self._faults.pop(fault_id, None) is not None

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(
        self,
        model: str,
        *,
        stream: bool,
        api: str = "sync",
        kinds: frozenset[str] | None = None,
    ) -> Plan:
        """The plan for one request to `model` on `api` (only faults of `kinds`, when given);
        uses up one hit of the matching fault."""
        with self._lock:
            self._purge(self._clock())
            for fault in self._faults.values():
                if fault.model not in (model, "*") or fault.api != api:
                    continue
                if kinds is not None and fault.kind not in kinds:
                    continue
                if KINDS[fault.kind].stream_only and not stream:
                    continue
                if not fault.draw():
                    continue  # this request is in the share the fault spares
                fault.hits += 1
                if fault.count is not None:
                    fault.count -= 1
                    if fault.count <= 0:
                        del self._faults[fault.id]
                return fault.plan()
            return Plan()

    def _purge(self, now: float) -> None:
        for fault_id in [f.id for f in self._faults.values() if f.expired(now)]:
            del self._faults[fault_id]
