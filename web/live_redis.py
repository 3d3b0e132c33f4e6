"""Live turns shared by several processes through Redis (UNDERSTUDY_REDIS_URL).

The process running a turn keeps it in a :class:`~web.live.LocalLiveTurns`, so its own watchers
follow it with nothing in between, and appends every update to the turn's Redis stream
(``<prefix>turn:<id>``). A watcher in any other process reads that stream from its first entry,
rebuilds the state with the same ``LiveTurn.apply``, and then blocks on the stream for what comes
next: a reload or a second tab on another process shows the reply so far and follows it to the end.

Why Streams and not pub/sub: a watcher that arrives late (a reload, a stream request answered by
another process than the POST) must get everything from the start, in order, with no gap between
what it replayed and what it follows. A stream is that log; pub/sub would lose whatever was
published before the subscription.

Cost on the token path: updates are buffered and written every ``FLUSH_S`` in one pipelined
round trip for all this process's turns (one stream entry per turn per flush), so Redis sees tens
of writes a second, not one per token. Redis being down never fails a turn: this process's watchers
are unaffected, writes are retried at the next flush, and other processes' watchers fall back to
the database (they check the turn's row while the stream is silent).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from web.live import LiveTurn, LocalLiveTurns, Subscription, Update
from web.live_codec import DecodeError, Ended, Opened, decode_batch, dumps, encode
from web.redis_util import RateLimitedWarning, text

log = logging.getLogger(__name__)

FLUSH_S = 0.02
"""Updates reach Redis at most this long after they happen (what a remote watcher waits more)."""
BLOCK_MS = 2000
"""A remote watcher blocks on the stream this long before it checks the turn's row."""
LIVE_TTL_S = 6 * 3600
"""A stream whose process died before ending it vanishes after this."""
ENDED_TTL_S = 300
"""An ended turn's stream is kept this long (a watcher finishing its read), then dropped: new
watchers read the database."""
RETRY_S = 5.0

IsLive = Callable[[str], Awaitable[bool]]
"""Whether the turn's row still says it is running (checked while its stream is silent)."""


class RedisLiveTurns:
    def __init__(self, url: str, prefix: str, is_live: IsLive, *, flush_s: float = FLUSH_S) -> None:
        self._local = LocalLiveTurns()
        self._prefix = f"{prefix}turn:"
        self._redis = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=10)
        self._is_live = is_live
        self._flush_s = flush_s
        self._pending: dict[str, list[dict[str, Any]]] = {}
        self._dirty = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._warn = RateLimitedWarning(log)

    def __len__(self) -> int:
        return len(self._local)

    def _key(self, turn_id: str) -> str:
        return self._prefix + turn_id

    # --- the process running the turn -------------------------------------------------------

    def open(
        self, turn_id: str, conversation_id: str, *, upgrade_of: str | None = None
    ) -> LiveTurn:
        turn = self._local.open(turn_id, conversation_id, upgrade_of=upgrade_of)
        self._queue(turn_id, encode(Opened(conversation_id, turn.started_at, upgrade_of)))
        return turn

    def publish(self, turn_id: str, update: Update) -> None:
        if self._local.get(turn_id) is None:
            return
        self._local.publish(turn_id, update)
        self._queue(turn_id, encode(update))

    def get(self, turn_id: str) -> LiveTurn | None:
        return self._local.get(turn_id)

    def subscribe(self, turn_id: str) -> Subscription | None:
        return self._local.subscribe(turn_id)

    def _queue(self, turn_id: str, item: dict[str, Any]) -> None:
        self._pending.setdefault(turn_id, []).append(item)
        self._dirty.set()
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_loop(), name="live-turns-to-redis")

    async def _flush_loop(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(self._flush_s)
            self._dirty.clear()
            pending, self._pending = self._pending, {}
            if not await self._write(pending):
                # Keep the order: what failed goes before what came meanwhile; try again later.
                # Ended turns are let go (their watchers elsewhere read the database), so an
                # outage holds only the running turns' updates.
                for turn_id, items in self._pending.items():
                    pending.setdefault(turn_id, []).extend(items)
                self._pending = {t: items for t, items in pending.items() if items[-1]["t"] != "e"}
                await asyncio.sleep(RETRY_S)
                self._dirty.set()

    async def _write(self, pending: dict[str, list[dict[str, Any]]]) -> bool:
        pipe = self._redis.pipeline(transaction=False)
        for turn_id, items in pending.items():
            key = self._key(turn_id)
            pipe.xadd(key, {"u": dumps(items)})
            if items[0]["t"] == "o":
                pipe.expire(key, LIVE_TTL_S)
            if items[-1]["t"] == "e":
                pipe.expire(key, ENDED_TTL_S)
        try:
            await pipe.execute()
        except (RedisError, OSError) as exc:
            self._warn(f"could not write live turns to Redis ({exc}); retrying in {RETRY_S:g} s")
            return False
        return True

    # --- watchers in any process ------------------------------------------------------------

    async def follow(self, turn_id: str) -> Subscription | None:
        """This process's turn, else another's from its stream; None when neither (the turn has
        ended, or it runs elsewhere and has published nothing yet: see :meth:`expect`)."""
        local = self._local.subscribe(turn_id)
        if local is not None:
            return local
        try:
            entries: Any = await self._redis.xrange(
                self._key(turn_id)
            )  # redis-py's types are loose
        except (RedisError, OSError) as exc:
            self._warn(f"could not read a live turn from Redis ({exc})")
            return None
        turn: LiveTurn | None = None
        last = "0-0"
        for entry_id, fields in entries:
            last = text(entry_id)
            for item in _entries(fields):
                if isinstance(item, Opened):
                    turn = LiveTurn(
                        turn_id, item.conversation_id, item.started_at, upgrade_of=item.upgrade_of
                    )
                elif isinstance(item, Ended):
                    return None  # ended: the database has the final state
                elif turn is not None:
                    turn.apply(item)
        if turn is None:
            return None
        return Subscription(turn, self._updates(turn_id, last))

    def expect(
        self, turn_id: str, conversation_id: str, upgrade_of: str | None
    ) -> Subscription | None:
        """A turn whose row says it is running, in another process, that has not published yet
        (its POST was answered a moment ago): follow its stream from the start."""
        if self._local.get(turn_id) is not None:
            return None
        turn = LiveTurn(turn_id, conversation_id, upgrade_of=upgrade_of)
        return Subscription(turn, self._updates(turn_id, "0-0"))

    async def _updates(self, turn_id: str, last: str) -> AsyncIterator[list[Update]]:
        """Batches from the stream after ``last``. Ends, without a Finished, when the turn has
        ended (the watcher then reads the database), or when its row says it is no longer
        running while the stream is silent (its process died and was swept)."""
        key = self._key(turn_id)
        while True:
            try:
                reply: Any = await self._redis.xread({key: last}, block=BLOCK_MS)
            except (RedisError, OSError) as exc:
                self._warn(f"could not follow a live turn in Redis ({exc})")
                reply = None
                await asyncio.sleep(1.0)
            if not reply:
                if not await self._is_live(turn_id):
                    return
                continue
            batch: list[Update] = []
            for _, entries in reply:
                for entry_id, fields in entries:
                    last = text(entry_id)
                    for item in _entries(fields):
                        if isinstance(item, Ended):
                            if batch:
                                yield batch
                            return
                        if not isinstance(item, Opened):
                            batch.append(item)
            if batch:
                yield batch

    async def aclose(self) -> None:
        if self._flusher is not None:
            if self._pending:  # the shutdown's last updates (turns recorded "interrupted")
                await self._write(self._pending)
                self._pending = {}
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self._redis.aclose()


def _entries(fields: dict[Any, Any]) -> list[Any]:
    raw = fields.get(b"u", fields.get("u"))
    if raw is None:
        return []
    try:
        return decode_batch(raw)
    except DecodeError as exc:
        log.warning("%s", exc)
        return []
