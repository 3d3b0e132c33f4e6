"""`queue_app`: a live server of its own whose chain has a [deferral] table (Message Batches on
the simulator), polling quickly, for the tests of queued replies over HTTP and in the browser."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pytest

if TYPE_CHECKING:
    from tests.conftest import LiveApp

SONNET = "claude-sonnet-4-6"
HAIKU = "claude-haiku-4-5-20251001"
OPENAI = "gpt-5.5"
BATCH_DELAY_S = 0.5
"""How long the simulator takes over a batch here: a reply lands within a second or so."""
DEFERRAL = """
[deferral]
backend = "anthropic_batch"
label = "Sonnet (Message Batches)"
badge = "delayed reply"
poll_s = 0.2
max_poll_s = 0.5
"""


def queue_chain() -> str:
    from conftest import TEST_CHAIN

    return TEST_CHAIN + DEFERRAL


class FaultTarget(Protocol):
    def set_fault(self, model: str, kind: str, **params: Any) -> Any: ...


def all_down(app: FaultTarget) -> None:
    """Every synchronous tier overloaded; the Message Batches endpoints are not touched."""
    app.set_fault(SONNET, "status", status=529)
    app.set_fault(HAIKU, "status", status=529)
    app.set_fault(OPENAI, "status", status=503)


@pytest.fixture(scope="module")
def queue_server() -> Iterator[LiveApp]:
    from conftest import start_live_app

    base = Path(tempfile.mkdtemp(prefix="understudy-queue-"))
    app = start_live_app(base, chain_text=queue_chain())
    try:
        yield app
    finally:
        app.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def queue_app(queue_server: LiveApp) -> LiveApp:
    queue_server.reset()
    queue_server.set_profile(SONNET, batch_delay_s=BATCH_DELAY_S)
    return queue_server
