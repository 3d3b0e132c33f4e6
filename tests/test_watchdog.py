"""The watchdog on its own: one lazily re-armed timer, cancelling only while the provider is awaited.

Most tests hand it a fake ``call_at`` whose clock moves only when the test says, and streams whose
items the test releases one at a time, so no verdict depends on how fast the machine is. The last
ones run on the real loop with tiny deadlines and only bound time from above.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import pytest

from web.watchdog import Expired, Watchdog

END = object()
"""Put this into a Gate to end its stream."""


@dataclass
class Timer:
    when: float
    callback: Callable[[], object]
    cancelled: bool = False
    ran: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class Timers:
    """The one thing a Watchdog asks of its loop (``call_at``), on a clock the test moves."""

    now: float = 0.0
    made: list[Timer] = field(default_factory=list)

    def call_at(self, when: float, callback: Callable[[], object]) -> Timer:
        timer = Timer(when, callback)
        self.made.append(timer)
        return timer

    def pending(self) -> list[Timer]:
        return [t for t in self.made if not t.cancelled and not t.ran]

    def advance_to(self, now: float) -> None:
        """Move the clock and run the timers that came due, in order (they may arm new ones)."""
        self.now = now
        while due := sorted((t for t in self.pending() if t.when <= now), key=lambda t: t.when):
            due[0].ran = True
            due[0].callback()

    def watchdog(self) -> Watchdog:
        return Watchdog(cast(asyncio.AbstractEventLoop, self))


class Gate:
    """An async iterator whose items the test releases one at a time; it notes cancellations.

    ``swallow=True`` makes it a badly behaved provider: it catches the cancellation meant to stop
    it and hands over ``"late"`` instead (``"raise"``: turns it into a ConnectionError).
    """

    def __init__(self, swallow: bool | str = False) -> None:
        self._items: asyncio.Queue[object] = asyncio.Queue()
        self.awaited = asyncio.Event()
        self.cancelled = 0
        self._swallow = swallow

    def __aiter__(self) -> Gate:
        return self

    async def __anext__(self) -> object:
        self.awaited.set()
        try:
            item = await self._items.get()
        except asyncio.CancelledError:
            self.cancelled += 1
            if self._swallow == "raise":
                raise ConnectionError("reset while cancelled") from None
            if not self._swallow:
                raise
            item = "late"
        finally:
            self.awaited.clear()
        if item is END:
            raise StopAsyncIteration
        return item

    def release(self, item: object) -> None:
        self._items.put_nowait(item)


async def settle() -> None:
    """Let every task that is ready run until it waits again (no time passes)."""
    for _ in range(5):
        await asyncio.sleep(0)


def consume(watchdog: Watchdog, gate: Gate, deadline: float) -> asyncio.Task[object]:
    return asyncio.create_task(watchdog.next(gate, deadline))


async def test_the_deadline_expires_a_stream_that_does_not_answer() -> None:
    timers = Timers()
    gate = Gate()
    wait = consume(timers.watchdog(), gate, deadline=1.0)
    await settle()
    timers.advance_to(0.999)
    await settle()
    assert not wait.done() and gate.cancelled == 0
    timers.advance_to(1.0)
    with pytest.raises(Expired):
        await wait
    assert gate.cancelled == 1  # the provider's await was cancelled, so it can close


async def test_an_item_in_time_is_returned_and_the_task_is_left_uncancelled() -> None:
    timers = Timers()
    gate = Gate()

    async def one() -> tuple[object, int]:
        item = await timers.watchdog().next(gate, 1.0)
        return item, asyncio.current_task().cancelling()  # type: ignore[union-attr]

    task = asyncio.create_task(one())
    await settle()
    timers.advance_to(0.9)
    gate.release("hello")
    assert await task == ("hello", 0)


async def test_a_later_deadline_per_item_keeps_one_timer_until_it_comes_due() -> None:
    # The chain's idle timeout: every item moves the deadline to "now + 1".
    timers = Timers()
    watchdog = timers.watchdog()
    gate = Gate()
    items: list[object] = []

    async def stream() -> None:
        while True:
            items.append(await watchdog.next(gate, timers.now + 1.0))

    task = asyncio.create_task(stream())
    await settle()
    for now in (0.3, 0.6, 0.9):  # three items inside the first second: no new timer
        timers.advance_to(now)
        gate.release(now)
        await settle()
    assert [t.when for t in timers.made] == [1.0]
    timers.advance_to(1.0)  # the timer comes due; text came since, so it moves to 1.9
    await settle()
    assert not task.done() and gate.cancelled == 0
    assert [t.when for t in timers.pending()] == [1.9]
    timers.advance_to(1.899)
    await settle()
    assert not task.done()
    timers.advance_to(1.9)  # silent since 0.9: now it expires
    with pytest.raises(Expired):
        await task
    assert items == [0.3, 0.6, 0.9]
    assert [t.when for t in timers.made] == [1.0, 1.9]  # 2 timers for 4 waits


async def test_an_earlier_deadline_rearms_at_once() -> None:
    # The first token may be given longer (first_token_s) than each later one (idle_s).
    timers = Timers()
    watchdog = timers.watchdog()
    gate = Gate()

    async def two() -> None:
        await watchdog.next(gate, 10.0)
        await watchdog.next(gate, timers.now + 1.0)

    task = asyncio.create_task(two())
    await settle()
    timers.advance_to(0.5)
    gate.release("first")
    await settle()
    assert [t.when for t in timers.pending()] == [1.5]
    assert timers.made[0].cancelled
    timers.advance_to(1.5)
    with pytest.raises(Expired):
        await task


async def test_a_slow_consumer_is_never_cancelled_while_it_handles_an_item() -> None:
    timers = Timers()
    watchdog = timers.watchdog()
    gate = Gate()
    handling = asyncio.Event()
    handled = asyncio.Event()
    got: list[object] = []

    async def slow_consumer() -> None:
        got.append(await watchdog.next(gate, timers.now + 1.0))
        handling.set()
        await handled.wait()  # a cancellation would land here
        got.append(await watchdog.next(gate, timers.now + 1.0))

    task = asyncio.create_task(slow_consumer())
    await settle()
    gate.release("a")
    await handling.wait()
    timers.advance_to(5.0)  # far past the deadline, but nobody is waiting for the provider
    await settle()
    assert not task.done()
    assert timers.pending() == []  # the timer went off and was not re-armed
    handled.set()
    await settle()
    assert [t.when for t in timers.pending()] == [6.0]  # the next wait arms its own deadline
    timers.advance_to(5.5)
    gate.release("b")
    await task
    assert got == ["a", "b"] and gate.cancelled == 0


async def test_an_outside_cancellation_is_a_cancelled_error_not_expired() -> None:
    timers = Timers()
    gate = Gate()
    wait = consume(timers.watchdog(), gate, deadline=1.0)
    await settle()
    wait.cancel()
    with pytest.raises(asyncio.CancelledError):
        await wait
    assert gate.cancelled == 1


@pytest.mark.parametrize("first", ["watchdog", "outside"])
@pytest.mark.parametrize("swallow", [False, True, "raise"], ids=["plain", "swallows", "converts"])
async def test_an_outside_cancellation_racing_the_watchdog_still_wins(
    first: str, swallow: bool | str
) -> None:
    # Both cancels land before the task runs again: it sees one CancelledError for two requests.
    # A provider that swallows it (or turns it into another error) must not swallow the outside
    # one as well: a Stop or a shutdown would go unheard and the chain would move on.
    timers = Timers()
    gate = Gate(swallow)
    wait = consume(timers.watchdog(), gate, deadline=1.0)
    await settle()
    if first == "watchdog":
        timers.advance_to(1.0)
        wait.cancel()
    else:
        wait.cancel()
        timers.advance_to(1.0)
    with pytest.raises(asyncio.CancelledError):
        await wait
    assert gate.cancelled == 1


@pytest.mark.parametrize("swallow", [True, "raise"], ids=["swallows", "converts"])
async def test_a_provider_that_swallows_the_cancellation_is_still_expired(
    swallow: bool | str,
) -> None:
    timers = Timers()
    watchdog = timers.watchdog()
    gate = Gate(swallow)

    async def one() -> int:
        with contextlib.suppress(Expired):
            await watchdog.next(gate, 1.0)
            raise AssertionError("the late item must not be returned")
        return asyncio.current_task().cancelling()  # type: ignore[union-attr]

    task = asyncio.create_task(one())
    await settle()
    timers.advance_to(1.0)
    assert await task == 0  # our cancellation was taken back: the task is not being cancelled
    assert gate.cancelled == 1


async def test_close_cancels_the_timer() -> None:
    timers = Timers()
    watchdog = timers.watchdog()
    gate = Gate()
    gate.release("only")
    assert await watchdog.next(gate, 1.0) == "only"
    assert len(timers.pending()) == 1
    watchdog.close()
    assert timers.pending() == []
    watchdog.close()  # twice is fine: the chain closes in a finally


async def test_the_end_of_the_stream_passes_through() -> None:
    timers = Timers()
    gate = Gate()
    gate.release(END)
    with pytest.raises(StopAsyncIteration):
        await timers.watchdog().next(gate, 1.0)


# --- on the real event loop --------------------------------------------------------------------


async def test_on_the_real_loop_a_tiny_deadline_expires_a_silent_stream() -> None:
    loop = asyncio.get_running_loop()
    watchdog = Watchdog(loop)
    gate = Gate()
    with pytest.raises(Expired):
        await asyncio.wait_for(watchdog.next(gate, loop.time() + 0.01), 5.0)
    assert gate.cancelled == 1
    watchdog.close()


@pytest.mark.parametrize("swallow", [False, True], ids=["plain", "swallows"])
async def test_on_the_real_loop_an_outside_cancel_due_with_the_deadline_wins(
    swallow: bool,
) -> None:
    # Two timers due at the same instant run in the same loop iteration, before the task resumes.
    loop = asyncio.get_running_loop()
    gate = Gate(swallow)
    deadline = loop.time() + 0.01
    wait = asyncio.create_task(Watchdog(loop).next(gate, deadline))
    loop.call_at(deadline, wait.cancel)
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(asyncio.shield(wait), 5.0)
    assert wait.cancelled()


def test_expired_is_an_exception_not_a_cancellation() -> None:
    # The chain catches Exception subclasses as failed attempts; CancelledError must stay apart.
    assert issubclass(Expired, Exception)
    assert not issubclass(Expired, asyncio.CancelledError)


async def test_expire_now_ends_the_wait_at_once() -> None:
    timers = Timers()
    gate = Gate()
    watchdog = timers.watchdog()
    wait = consume(watchdog, gate, deadline=10.0)
    await settle()
    watchdog.expire_now()
    with pytest.raises(Expired):
        await wait
    assert gate.cancelled == 1
    timers.advance_to(10.0)  # the timer that was armed for the deadline does nothing more
    with pytest.raises(Expired):  # and the next wait expires too: the try is over
        await watchdog.next(gate, 20.0)
    assert gate.cancelled == 1


async def test_expire_now_between_items_expires_the_next_wait() -> None:
    timers = Timers()
    gate = Gate()
    watchdog = timers.watchdog()
    gate.release("a")
    assert await watchdog.next(gate, 10.0) == "a"
    watchdog.expire_now()  # while the consumer handles "a": nothing to cancel
    with pytest.raises(Expired):
        await watchdog.next(gate, 10.0)
    assert gate.cancelled == 0


async def test_expire_now_after_the_deadline_fired_cancels_once() -> None:
    timers = Timers()
    gate = Gate()
    watchdog = timers.watchdog()
    wait = consume(watchdog, gate, deadline=1.0)
    await settle()
    timers.advance_to(1.0)
    watchdog.expire_now()  # the same wait, already being cancelled by the deadline
    with pytest.raises(Expired):  # not CancelledError: one cancellation, ours
        await wait
    assert gate.cancelled == 1
