"""Where the breakers' state lives: in this process, or in Redis so that every process agrees.

:class:`Breakers` is what the chain uses (admit a try, report its result, read the states for the
page). Each change is one atomic read-modify-write of one tier's state through a store:

- :class:`LocalStore`: a dict. The event loop runs one change at a time, so nothing more is needed.
- :class:`RedisStore` (``UNDERSTUDY_REDIS_URL``): the state is a JSON value per tier, changed with
  WATCH/MULTI (optimistic: a change that raced another is re-read and re-applied), so two processes
  never both take the half-open probe. Redis being down never fails a turn: the change is applied
  to this process's own state instead, a warning is logged once, and Redis is tried again a few
  seconds later.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from web.breaker import (
    BreakerConfig,
    TierBreaker,
    Verdict,
    classify,
    decide,
    record,
    would_pass,
)
from web.events import AttemptRecord
from web.providers.base import ErrorKind
from web.redis_util import text

log = logging.getLogger(__name__)

T = TypeVar("T")
Change = Callable[[TierBreaker], T]

KEY_PREFIX = "understudy:breaker:"
REDIS_RETRY_S = 5.0
"""After Redis failed, this process uses its own state for this long before trying Redis again."""


class BreakerStore(Protocol):
    async def change(self, tier: str, change: Change[T]) -> T:
        """Apply ``change`` to the tier's state atomically and keep the result."""
        ...

    async def read(self, tiers: Iterable[str]) -> dict[str, TierBreaker]: ...

    async def aclose(self) -> None: ...


class LocalStore:
    def __init__(self) -> None:
        self._states: dict[str, TierBreaker] = {}

    async def change(self, tier: str, change: Change[T]) -> T:
        return change(self._states.setdefault(tier, TierBreaker()))

    async def read(self, tiers: Iterable[str]) -> dict[str, TierBreaker]:
        return {
            t: TierBreaker.from_json(self._states.get(t, TierBreaker()).to_json()) for t in tiers
        }

    async def aclose(self) -> None:
        pass


class RedisStore:
    def __init__(
        self, url: str, *, prefix: str = KEY_PREFIX, clock: Callable[[], float] = time.monotonic
    ) -> None:
        from redis.asyncio import Redis

        self._prefix = prefix
        self._redis = Redis.from_url(
            url, socket_timeout=0.5, socket_connect_timeout=0.5, retry_on_timeout=False
        )
        self._local = LocalStore()
        self._clock = clock
        self._queued: dict[str, list[tuple[Change[Any], asyncio.Future[Any]]]] = {}
        self._flushing: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._down_until = 0.0
        self._warned = False

    async def change(self, tier: str, change: Change[T]) -> T:
        if self._clock() < self._down_until:
            return await self._local.change(tier, change)
        try:
            result = await self._change(tier, change)
        except Exception as exc:  # redis.RedisError, OSError, timeouts: never fail the turn
            self._went_down(exc)
            return await self._local.change(tier, change)
        self._came_back()
        return result

    async def _change(self, tier: str, change: Change[T]) -> T:
        """Queue the change for the tier's next transaction and wait for its result.

        One transaction per tier at a time in this process, carrying every change queued
        meanwhile: concurrent turns of one process never race each other's WATCH (each would
        make all the others read again: a storm that grows with the square of the turns), and
        only other processes' writes can send a transaction round again.
        """
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queued.setdefault(tier, []).append((change, future))
        if tier not in self._flushing:
            self._flushing.add(tier)
            task = asyncio.create_task(self._flush(tier), name=f"breaker-{tier}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        result: T = await future
        return result

    async def _flush(self, tier: str) -> None:
        try:
            while queued := self._queued.pop(tier, None):
                try:
                    outcomes = await self._apply(tier, [change for change, _ in queued])
                except Exception as exc:  # Redis unreachable: every caller falls back
                    for _, future in queued:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), (value, error) in zip(queued, outcomes, strict=True):
                    if future.done():  # its turn was cancelled meanwhile
                        continue
                    if error is not None:
                        future.set_exception(error)
                    else:
                        future.set_result(value)
        finally:
            self._flushing.discard(tier)

    async def _apply(
        self, tier: str, changes: list[Change[Any]]
    ) -> list[tuple[Any, Exception | None]]:
        from redis.exceptions import WatchError

        key = self._prefix + tier
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    state = TierBreaker.from_json(json.loads(raw)) if raw else TierBreaker()
                    outcomes = [_applied(change, state) for change in changes]
                    after = json.dumps(state.to_json())
                    if raw is not None and after == text(raw):
                        await pipe.unwatch()  # type: ignore[no-untyped-call]  # nothing changed
                        return outcomes
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.set(key, after)
                    await pipe.execute()
                    return outcomes
                except WatchError:
                    continue  # another process changed it meanwhile: read again

    async def read(self, tiers: Iterable[str]) -> dict[str, TierBreaker]:
        names = list(tiers)
        if self._clock() < self._down_until:
            return await self._local.read(names)
        try:
            raws = await self._redis.mget([self._prefix + t for t in names])
        except Exception as exc:
            self._went_down(exc)
            return await self._local.read(names)
        self._came_back()
        return {
            t: TierBreaker.from_json(json.loads(raw)) if raw else TierBreaker()
            for t, raw in zip(names, raws, strict=True)
        }

    def _went_down(self, exc: Exception) -> None:
        self._down_until = self._clock() + REDIS_RETRY_S
        if not self._warned:
            self._warned = True
            log.warning(
                "Redis is unreachable (%s: %s): circuit breakers use this process's own state "
                "until it is back",
                type(exc).__name__,
                exc,
            )

    def _came_back(self) -> None:
        if self._warned:
            self._warned = False
            log.warning("Redis is reachable again: circuit breakers are shared once more")

    async def aclose(self) -> None:
        await self._redis.aclose()


def _applied(change: Change[Any], state: TierBreaker) -> tuple[Any, Exception | None]:
    try:
        return change(state), None
    except Exception as exc:  # a bug in one change fails its caller, not the others
        return None, exc


@dataclass(frozen=True)
class Admission:
    verdict: Verdict
    opened_at: float | None = None
    """Since when the tier has been unavailable (a skip)."""
    reason: ErrorKind | None = None
    """What opened it."""


class Breakers:
    """The breakers of a chain's tiers (by tier name)."""

    def __init__(
        self,
        configs: Mapping[str, BreakerConfig],
        store: BreakerStore | None = None,
        *,
        clock: Callable[[], float] = time.time,
        retry_after_cap_s: float = 2.0,
    ) -> None:
        self._configs = dict(configs)
        self._store: BreakerStore = store or LocalStore()
        self._clock = clock
        self._retry_after_cap_s = retry_after_cap_s

    @property
    def tiers(self) -> tuple[str, ...]:
        return tuple(self._configs)

    async def admit(self, tier: str) -> Admission:
        config = self._configs[tier]
        now = self._clock()

        def change(state: TierBreaker) -> Admission:
            verdict = decide(state, now, config)
            return Admission(verdict, state.opened_at, state.reason)

        return await self._store.change(tier, change)

    async def passes(self, tier: str) -> tuple[bool, float | None]:
        """Would a try of ``tier`` go through now (nothing reserved), and since when it is open."""
        state = (await self._store.read([tier]))[tier]
        return would_pass(state, self._clock()), state.opened_at

    async def report(self, tier: str, attempt: AttemptRecord, *, probe: bool) -> None:
        config = self._configs[tier]
        effect = classify(attempt, self._retry_after_cap_s)
        now = self._clock()

        def change(state: TierBreaker) -> None:
            record(state, now, config, effect, attempt.error_kind, attempt.retry_after, probe=probe)

        await self._store.change(tier, change)

    async def states(self) -> dict[str, TierBreaker]:
        return await self._store.read(self._configs)

    def now(self) -> float:
        return self._clock()

    async def aclose(self) -> None:
        await self._store.aclose()
