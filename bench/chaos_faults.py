"""The chaos bench's fault loop: a seeded schedule of outages, applied to the simulator.

The schedule is a pure function of the seed (and of the tiers and the reply length), so a run can
be repeated with `--seed`: the same periods, the same faults on the same tiers in the same order.
Only how many requests each fault meets depends on the machine.

Each period lasts a few seconds and replaces every fault of the period before (DELETE /faults,
then one POST /faults per fault). A period is one of (dealt from ``PERIOD_DECK``):

- healthy: no fault at all (the breakers must let the tiers back in);
- all down: every tier fails every request (an error status, a reset, a hang or a flap), so
  turns end "failed" and the breakers all open;
- mixed: each tier, independently, gets a fault or not.

Fault kinds are dealt from a shuffled deck of every kind the simulator knows
(``web.sim.faults.KINDS``), so each kind comes up once before any comes up twice; their
parameters are drawn to land on both sides of the chain's timeouts (a first token a little late
or far too late, a stall shorter or longer than the idle timeout, a cut at the first token or
near the end).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import httpx

from web.sim.faults import KINDS, parse_fault

log = logging.getLogger("chaos.faults")

PERIOD_S = (2.0, 6.0)
"""A period lasts uniform(2, 6) s: long enough for breakers to count, short enough to change
several times a minute."""

# HTTP errors a provider really sends, with what the chain must do about each: move on (429
# with and without retry-after, 5xx, 408), skip the key's tiers (401/403), stop (400/404).
_STATUSES: tuple[dict[str, Any], ...] = (
    {"status": 429},
    {"status": 429, "retry_after": 1},
    {"status": 429, "retry_after": 30},
    {"status": 429, "code": "insufficient_quota"},
    {"status": 500},
    {"status": 502},
    {"status": 503},
    {"status": 529},
    {"status": 408},
    {"status": 401},
    {"status": 403},
    {"status": 400},
    {"status": 400, "code": "content_policy_violation"},
    {"status": 404},
)
_DOWN_KINDS = ("status", "reset", "hang", "flap")
"""What an "all down" period uses: every request fails, none streams text."""
_DOWN_STATUSES = (429, 500, 502, 503, 529)
_ERROR_TYPES = (None, "overloaded_error", "api_error", "rate_limit_error", "server_error")


class PeriodKind(StrEnum):
    HEALTHY = "healthy"
    ALL_DOWN = "all down"
    MIXED = "mixed"


PERIOD_DECK = (
    PeriodKind.HEALTHY,
    PeriodKind.ALL_DOWN,
    PeriodKind.ALL_DOWN,
    *[PeriodKind.MIXED] * 7,
)
"""Periods are dealt from this deck, shuffled: every ten periods, one healthy and two with every
tier down, so even a short run sees both."""


@dataclass(frozen=True)
class Fault:
    tier: str
    model: str
    kind: str
    params: dict[str, Any]
    count: int | None

    def body(self) -> dict[str, Any]:
        return {"model": self.model, "kind": self.kind, **self.params, "count": self.count}

    def describe(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in self.params.items())
        count = "" if self.count is None else f" x{self.count}"
        return f"{self.tier}: {self.kind}{f'({params})' if params else ''}{count}"


@dataclass(frozen=True)
class Period:
    kind: PeriodKind
    seconds: float
    faults: tuple[Fault, ...]


class Schedule:
    """The seeded, endless sequence of periods."""

    def __init__(
        self,
        seed: int,
        tiers: Sequence[tuple[str, str]],
        *,
        reply_tokens: int,
        first_token_s: float,
        idle_s: float,
    ) -> None:
        self._rng = random.Random(f"chaos-faults:{seed}")
        self._tiers = tuple(tiers)
        self._reply_tokens = reply_tokens
        self._first_token_s = first_token_s
        self._idle_s = idle_s
        self._deck: list[str] = []
        self._periods: list[PeriodKind] = []

    def __iter__(self) -> Iterator[Period]:
        while True:
            yield self.next_period()

    def next_period(self) -> Period:
        rng = self._rng
        seconds = round(rng.uniform(*PERIOD_S), 2)
        if not self._periods:
            self._periods = list(PERIOD_DECK)
            rng.shuffle(self._periods)
        kind = self._periods.pop()
        if kind is PeriodKind.HEALTHY:
            return Period(PeriodKind.HEALTHY, seconds, ())
        if kind is PeriodKind.ALL_DOWN:
            down = tuple(
                self._fault(name, model, rng.choice(_DOWN_KINDS), seconds, down=True)
                for name, model in self._tiers
            )
            return Period(PeriodKind.ALL_DOWN, seconds, down)
        faults = tuple(
            self._fault(name, model, self._deal(), seconds)
            for name, model in self._tiers
            if rng.random() < 0.6
        )
        return Period(PeriodKind.MIXED, seconds, faults)

    def _deal(self) -> str:
        if not self._deck:
            self._deck = sorted(KINDS)
            self._rng.shuffle(self._deck)
        return self._deck.pop()

    def _fault(
        self, tier: str, model: str, kind: str, period_s: float, *, down: bool = False
    ) -> Fault:
        rng = self._rng
        tokens = self._reply_tokens
        params: dict[str, Any] = {}
        match kind:
            case "status" if down:
                params = {"status": rng.choice(_DOWN_STATUSES)}
            case "status":
                params = dict(rng.choice(_STATUSES))
            case "slow_first_token":
                # Half of them within the first-token timeout, half past it.
                params = {"delay_s": round(rng.uniform(0.2, 2 * self._first_token_s), 2)}
            case "cut":
                params = {"after_tokens": rng.randint(0, tokens - 1)}
            case "stall":
                delay = rng.uniform(0.2, 3 * self._idle_s)
                params = {"after_tokens": rng.randint(0, tokens - 1), "delay_s": round(delay, 2)}
            case "error_event":
                params = {"after_tokens": rng.randint(0, tokens - 1)}
                error_type = rng.choice(_ERROR_TYPES)
                if error_type is not None:
                    params["error_type"] = error_type
            case "malformed" if rng.random() < 0.5:
                params = {"n": rng.randint(1, tokens + 3)}
            case "malformed":
                params = {"after_tokens": rng.randint(0, tokens - 1)}
            case "flap":
                params = {
                    "status": rng.choice(_DOWN_STATUSES),
                    # All down: for the whole period; else it heals within it.
                    "down_s": round(period_s if down else rng.uniform(0.5, period_s), 2),
                }
        # Most faults last the period; some only hit a few requests (the tier heals mid-period).
        count = None if down or rng.random() < 0.75 else rng.randint(1, 10)
        fault = Fault(tier, model, kind, params, count)
        parse_fault(fault.body(), "check")  # a schedule the simulator would refuse is a bench bug
        return fault


@dataclass
class FaultLog:
    """What the loop applied, for the report."""

    periods: Counter[PeriodKind] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    by_tier: Counter[str] = field(default_factory=Counter)
    applied: list[tuple[float, Fault]] = field(default_factory=list)
    timeline: list[tuple[float, frozenset[str]]] = field(default_factory=list)
    """(Unix time, the tiers with a fault from then on), to hold against the turn log."""
    errors: list[str] = field(default_factory=list)

    def faulted_at(self, when: float) -> frozenset[str] | None:
        """The tiers that had a fault set at Unix time ``when`` (None: before the first period)."""
        tiers = None
        for start, faulted in self.timeline:
            if start > when:
                break
            tiers = faulted
        return tiers


async def fault_loop(
    sim: httpx.AsyncClient,
    schedule: Schedule,
    stop: asyncio.Event,
    faults: FaultLog,
    clock: Callable[[], float],
) -> None:
    """Apply one period after another until ``stop`` is set, then clear every fault."""
    try:
        for period in schedule:
            await _replace(sim, period, faults, clock())
            faults.periods[period.kind] += 1
            try:
                await asyncio.wait_for(stop.wait(), timeout=period.seconds)
                return
            except TimeoutError:
                continue
    finally:
        await _clear(sim, faults)
        faults.timeline.append((time.time(), frozenset()))


async def _replace(sim: httpx.AsyncClient, period: Period, faults: FaultLog, now: float) -> None:
    await _clear(sim, faults)
    faults.timeline.append((time.time(), frozenset(f.tier for f in period.faults)))
    for fault in period.faults:
        answer = await sim.post("/faults", json=fault.body())
        if answer.status_code != 201:
            faults.errors.append(f"{fault.describe()}: simulator answered {answer.status_code}")
            continue
        faults.kinds[fault.kind] += 1
        faults.by_tier[fault.tier] += 1
        faults.applied.append((now, fault))


async def _clear(sim: httpx.AsyncClient, faults: FaultLog) -> None:
    answer = await sim.delete("/faults")
    if answer.status_code != 200:
        faults.errors.append(f"DELETE /faults answered {answer.status_code}")
