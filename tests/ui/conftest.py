"""Every browser test listens to the browser: an error nobody declared fails the test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.console import ConsoleErrors


@pytest.fixture(autouse=True)
def console_errors(request: pytest.FixtureRequest) -> Iterator[ConsoleErrors]:
    """Records console errors, uncaught exceptions and CSP violations of the test's browser
    context (`page`'s); fails the test at teardown if any was not declared with
    ``console_errors.allow(...)`` / ``allow_failed(...)``."""
    errors = ConsoleErrors()
    if "page" in request.fixturenames or "context" in request.fixturenames:
        errors.watch(request.getfixturevalue("context"))
    yield errors
    unexpected = errors.unexpected()
    if unexpected:
        listed = "\n".join(f"  {logged}" for logged in unexpected)
        pytest.fail(f"the browser logged {len(unexpected)} unexpected error(s):\n{listed}")
