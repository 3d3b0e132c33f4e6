"""A clock for the simulator's fault registry that moves only when a test moves it."""

from __future__ import annotations


class FakeClock:
    """``SimServer(clock=clock)``: a flap heals when the test calls ``advance``, never earlier
    because the machine was slow."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a monotonic clock does not go back")
        self.now += seconds
