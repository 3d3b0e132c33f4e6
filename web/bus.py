"""The channel every process of one deployment listens to (Redis pub/sub, UNDERSTUDY_REDIS_URL).

It carries what one process asks of whichever process can act: Stop and "Answer now" for a turn
(only the process running it acts, web.commands), and "this queued turn's reply landed" (every
process wakes the pages waiting for it, web.landings). Fire-and-forget on purpose: a command that
nobody acts on is harmless (the process running the turn died, and the sweep of dead processes
records the turn, web.processes), and pages waiting for a landing also read the turn's row every
few seconds. Pub/sub and not a stream: nothing here is worth replaying to a process that was not
listening.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from web.redis_util import RateLimitedWarning

log = logging.getLogger(__name__)

RETRY_S = 2.0
Handler = Callable[[dict[str, Any]], None]


class Bus:
    def __init__(self, url: str, prefix: str, sender: str) -> None:
        """``sender``: this process's id; a process ignores its own messages."""
        self._redis = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
        self._channel = f"{prefix}bus"
        self._sender = sender
        self._handlers: dict[str, Handler] = {}
        self._listener: asyncio.Task[None] | None = None
        self._sends: set[asyncio.Task[bool]] = set()
        self._warn = RateLimitedWarning(log)

    def on(self, op: str, handler: Handler) -> None:
        self._handlers[op] = handler

    async def start(self) -> None:
        """Subscribe before returning (what is sent after start() is received); then listen."""
        self._listener = asyncio.create_task(
            self._listen(await self._subscribe()), name="bus-listener"
        )

    async def _subscribe(self) -> Any:
        """A subscribed PubSub, or None when Redis cannot be reached (the listener retries)."""
        pubsub: Any = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self._channel)
        except (RedisError, OSError) as exc:
            self._warn(f"cannot listen on Redis ({exc}); retrying")
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()
            return None
        return pubsub

    async def send(self, op: str, **fields: Any) -> bool:
        """Publish to every process; False when Redis could not be reached."""
        message = json.dumps({"op": op, "from": self._sender, **fields})
        try:
            await self._redis.publish(self._channel, message)
        except (RedisError, OSError) as exc:
            self._warn(f"could not publish {op!r} on Redis ({exc})")
            return False
        return True

    def post(self, op: str, **fields: Any) -> None:
        """:meth:`send` without waiting for it (from code that cannot await)."""
        task = asyncio.create_task(self.send(op, **fields))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _listen(self, pubsub: Any) -> None:
        while True:
            if pubsub is None:
                await asyncio.sleep(RETRY_S)
                pubsub = await self._subscribe()
                continue
            try:
                async for message in pubsub.listen():
                    self._dispatch(message)
            except (RedisError, OSError) as exc:
                self._warn(f"lost the Redis channel ({exc}); listening again")
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
                pubsub = None

    def _dispatch(self, message: dict[str, Any]) -> None:
        if message.get("type") != "message":
            return
        try:
            data = json.loads(message["data"])
            op, sender = data["op"], data.get("from")
        except (ValueError, KeyError, TypeError):
            log.warning("ignored an unreadable message on the bus")
            return
        if sender == self._sender:
            return
        handler = self._handlers.get(op)
        if handler is None:
            return
        try:
            handler(data)
        except Exception:
            log.exception("bus handler for %r failed", op)

    async def aclose(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        for task in list(self._sends):
            with contextlib.suppress(Exception):
                await task
        await self._redis.aclose()
