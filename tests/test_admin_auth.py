from __future__ import annotations

import pytest

from web.admin_auth import LoginLimiter


def test_the_window_slides_per_client() -> None:
    limiter = LoginLimiter(limit=2, window_s=60.0)
    limiter.failed("a", 0.0)
    limiter.failed("a", 10.0)
    assert limiter.retry_after("a", 20.0) == pytest.approx(40.0)
    assert limiter.retry_after("b", 20.0) is None
    assert limiter.retry_after("a", 60.5) is None  # the first failure left the window
    limiter.succeeded("a")
    assert limiter.retry_after("a", 61.0) is None


def test_many_clients_do_not_grow_it_without_bound() -> None:
    limiter = LoginLimiter(limit=2, window_s=60.0)
    limiter.max_clients = 100
    for i in range(100):
        limiter.failed(f"old-{i}", 0.0)
    limiter.failed("new", 120.0)
    assert limiter.retry_after("new", 120.0) is None
    assert len(limiter._failures) == 1
