"""The sliding window behind the new-conversation limit, on a clock stepped by hand."""

from __future__ import annotations

import pytest

from web.ratelimit import SlidingWindow


def test_the_window_slides_per_key() -> None:
    now = [0.0]
    window = SlidingWindow(limit=2, window_s=60.0, clock=lambda: now[0])
    window.hit("a")
    now[0] = 10.0
    window.hit("a")
    now[0] = 20.0
    assert window.retry_after("a") == pytest.approx(40.0)
    assert window.retry_after("b") is None
    now[0] = 60.5  # the first hit left the window
    assert window.retry_after("a") is None


def test_many_keys_do_not_grow_it_without_bound() -> None:
    now = [0.0]
    window = SlidingWindow(limit=2, window_s=60.0, clock=lambda: now[0])
    window.max_keys = 100
    for i in range(100):
        window.hit(f"old-{i}")
    now[0] = 120.0
    window.hit("new")
    assert window.retry_after("new") is None
    assert len(window._hits) == 1
