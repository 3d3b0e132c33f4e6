"""The app to drill when there is no --target: Understudy on the simulator, in this process.

``create_app`` under uvicorn on a free loopback port, in a thread of its own (its event loop
apart from the drill's, and no signal handlers: Ctrl-C belongs to the drill, which must end the
drill before anything stops). Demo mode whatever keys the environment holds: every tier of the
chain file answers from the simulated upstream, which starts inside the app, and nothing is sent
to a real provider. Its data goes to a temporary folder, removed afterwards, unless
UNDERSTUDY_DATA_DIR is set; Redis is not used (a drill's breakers must not be shared with a real
deployment's).
"""

from __future__ import annotations

import secrets
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import uvicorn

from web.settings import Settings, load_chain_file

START_TIMEOUT_S = 60.0
"""Generous: a loaded machine can take many seconds to import the SDKs and migrate."""
STOP_TIMEOUT_S = 15.0


def demo_settings(settings: Settings, data_dir: Path | None, password: str) -> Settings:
    """``settings`` with every tier of its chain file on the simulator, and its data in
    ``data_dir`` (None: where ``settings`` keeps it)."""
    chain, deferral = load_chain_file(settings.chain_file)
    demo = replace(
        settings,
        tiers=chain,
        left_out=(),
        api_keys={},
        sim_url=None,
        deferral=deferral,
        admin_password=password,
        redis_url=None,
        expose_sim=False,
    )
    if data_dir is None:
        return demo
    return replace(
        demo, data_dir=data_dir, database_url=f"sqlite+aiosqlite:///{data_dir / 'understudy.db'}"
    )


@dataclass
class InProcessApp:
    url: str
    settings: Settings
    _server: uvicorn.Server
    _thread: threading.Thread
    _scratch: Path | None

    @classmethod
    def start(cls, settings: Settings) -> InProcessApp:
        from web.app import create_app  # the app's imports are only paid for without --target

        scratch = None if settings.data_dir_set else Path(tempfile.mkdtemp(prefix="understudy-"))
        password = settings.admin_password or secrets.token_urlsafe(18)
        demo = demo_settings(settings, scratch / "data" if scratch else None, password)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(demo, served_host="127.0.0.1"),
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=5,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="understudy-app", daemon=True
        )
        app = cls(f"http://127.0.0.1:{port}", demo, server, thread, scratch)
        thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        # uvicorn has no event to wait on; ``started`` flips once the socket serves.
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                app.stop()
                raise RuntimeError(f"the in-process app did not start within {START_TIMEOUT_S:g} s")
            time.sleep(0.05)
        return app

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(STOP_TIMEOUT_S)
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
