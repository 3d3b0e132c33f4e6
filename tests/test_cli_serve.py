"""`understudy serve` in this process: what happens once per process, not once per app."""

from __future__ import annotations

import asyncio
import gc
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI

from web.app import create_app
from web.server import _Server
from web.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env({"UNDERSTUDY_DATA_DIR": str(tmp_path / "data")})


@pytest.fixture
def thawed() -> Iterator[None]:
    """Leave nothing frozen behind for the rest of the test run."""
    gc.unfreeze()
    yield
    gc.unfreeze()


async def test_an_app_start_freezes_nothing(settings: Settings, thawed: None) -> None:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        assert gc.get_freeze_count() == 0


class _WatchedServer(_Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config, app)
        self.up = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.up.set()


async def test_the_server_freezes_what_start_up_made_once_it_has_started(
    settings: Settings, thawed: None, capsys: pytest.CaptureFixture[str]
) -> None:
    app = create_app(settings)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, access_log=False)
    server = _WatchedServer(config, app)
    task = asyncio.create_task(server.serve())
    try:
        await asyncio.wait_for(server.up.wait(), 10)
        assert server.started
        assert gc.get_freeze_count() > 0
        assert "Understudy is running at http://127.0.0.1:" in capsys.readouterr().out
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
