"""The chain's per-attempt timeouts (first token, idle, total) on one lazily re-armed timer.

``asyncio.timeout()`` around every ``__anext__`` would cost a timer handle per token, which was
most of the chain's own overhead at 100 concurrent streams. The watchdog instead moves a deadline
per token and re-arms its single timer only when it fires before the current deadline. It cancels
the task only while it awaits the provider, never while the consumer is handling an event (a slow
consumer is not an idle upstream), and turns its own cancellation into :class:`Expired`, while a
cancellation from outside (the consumer went away) still propagates as ``CancelledError``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, TypeVar

T = TypeVar("T")


class Expired(Exception):
    """The deadline passed while the provider was being awaited."""


class Watchdog:
    __slots__ = (
        "_armed_at",
        "_deadline",
        "_expired",
        "_fired",
        "_handle",
        "_loop",
        "_task",
        "_waiting",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._task: asyncio.Task[Any] | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._armed_at = 0.0
        self._deadline = 0.0
        self._waiting = False
        self._fired = False
        self._expired = False

    async def next(self, stream: AsyncIterator[T], deadline: float) -> T:
        """``anext(stream)``, or :class:`Expired` if it is not done by ``deadline`` (loop time)
        or :meth:`expire_now` was called."""
        if self._expired:
            raise Expired
        self._deadline = deadline
        if self._handle is None or deadline < self._armed_at:
            self._arm(deadline)
        task = self._task
        if task is None:  # a turn is consumed by one task; asking each token costs ~1 us
            task = self._task = asyncio.current_task()
            assert task is not None
        self._waiting = True
        try:
            item = await anext(stream)
        except BaseException as exc:
            self._waiting = False
            if not self._fired:
                raise
            self._fired = False
            if task.uncancel() == 0:
                raise Expired from None
            if isinstance(exc, asyncio.CancelledError):
                raise  # cancelled from outside as well: that wins
            # ...even when the provider turned the cancellation into an error of its own.
            raise asyncio.CancelledError from exc
        self._waiting = False
        if self._fired:  # the provider swallowed our cancellation
            self._fired = False
            if task.uncancel() > 0:
                raise asyncio.CancelledError  # and an outside one with it: that still wins
            raise Expired
        return item

    def expire_now(self) -> None:
        """End the wait at once (the user chose not to wait): the current or next ``next()``
        raises :class:`Expired`."""
        self._expired = True
        if self._waiting and not self._fired:
            self._fired = True
            assert self._task is not None
            self._task.cancel()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _arm(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._armed_at = when
        self._handle = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._handle = None
        if not self._waiting or self._fired:
            return  # the consumer has the event (the next wait re-arms), or already expired
        if self._deadline > self._armed_at:
            self._arm(self._deadline)  # text came since this timer was set
            return
        self._fired = True
        assert self._task is not None
        self._task.cancel()
