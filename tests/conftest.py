"""Shared fixtures: Playwright on Debian's Chromium, and `live_app`, a real `understudy serve`.

`live_app` runs the app the way a user does (the console script, in a subprocess, from another
current directory), with no API keys so it embeds the simulated upstream, a temporary data folder
and a chain whose timeouts are short enough for tests. One server is shared by the session and reset
before each test (faults, request log, fast model profiles); a test that stops it gets a fresh one
for the next test.

The suite's other shared fixtures live in tests/support and are registered here, once, for every
folder: the databases (support/database.py), the loopback simulator `upstream`
(support/engine.py) and browser sessions on `live_app`, `client` and `stranger` (support/chat.py).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.chat import live_client, stranger  # noqa: F401  (fixtures, registered for the suite)
from support.database import (  # noqa: F401
    database_url,
    empty_database_url,
    factory,
    pg_log_url,
)
from support.engine import upstream  # noqa: F401
from support.queue_app import queue_app, queue_server  # noqa: F401
from support.queue_bed import make_bed  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
ADMIN_PASSWORD = "test-admin-password"
START_TIMEOUT_S = 60.0  # generous: a loaded 2-core machine can take 20 s to import the SDKs

#: Profiles applied to every model before each test: replies of ~40 tokens in ~0.15 s.
FAST_PROFILE: dict[str, Any] = {"first_token_s": 0.02, "tokens_per_s": 400.0, "reply_tokens": 40}

#: The default chain, with breakers that never stay open: the server is shared by tests that each
#: set their own faults (the breakers' own tests start a server of their own). The first-token and
#: idle timeouts only have to be long enough that a busy machine never trips them, and that a
#: test can hold a first token back for a couple of seconds to look at the page before it comes.
TEST_CHAIN = """
[[tiers]]
name = "sonnet"
provider = "anthropic"
model = "claude-sonnet-4-6"
label = "Sonnet"
badge = ""
api_key_env = "ANTHROPIC_API_KEY"
context_window = 200000
timeouts = { connect_s = 2.0, first_token_s = 5.0, idle_s = 5.0, total_s = 30.0 }
breaker = { min_calls = 1000000, open_s = 0.001, max_open_s = 0.001 }

[[tiers]]
name = "haiku"
provider = "anthropic"
model = "claude-haiku-4-5-20251001"
label = "Haiku"
badge = "fast mode (smaller model)"
api_key_env = "ANTHROPIC_API_KEY"
context_window = 200000
timeouts = { connect_s = 2.0, first_token_s = 5.0, idle_s = 5.0, total_s = 30.0 }
breaker = { min_calls = 1000000, open_s = 0.001, max_open_s = 0.001 }

[[tiers]]
name = "openai"
provider = "openai"
model = "gpt-5.5"
label = "GPT-5.5"
badge = "fallback provider"
api_key_env = "OPENAI_API_KEY"
context_window = 400000
max_output_tokens = 60
timeouts = { connect_s = 2.0, first_token_s = 5.0, idle_s = 5.0, total_s = 30.0 }
breaker = { min_calls = 1000000, open_s = 0.001, max_open_s = 0.001 }
"""

#: "Answer with ... now" shows after this long without a first token (well inside the 5 s
#: first-token timeout above, so a test can press it before the chain moves on by itself).
ANSWER_NOW_AFTER_S = 1.0

PROVIDER_KEYS = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY")
"""Never passed on from the test environment: the live app must not see a real key."""

SONNET = "claude-sonnet-4-6"
HAIKU = "claude-haiku-4-5-20251001"
OPENAI = "gpt-5.5"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def understudy_command() -> list[str]:
    script = Path(sys.executable).parent / "understudy"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from web.cli import main; main()"]


@dataclass
class LiveApp:
    """A running `understudy serve` subprocess and the simulator behind it."""

    url: str
    admin_password: str
    database_url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    _client: httpx.Client = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._client = httpx.Client(base_url=self.url, timeout=10.0)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    # --- the simulator's control API, through the app's own /_sim mount -------------------
    def set_fault(self, model: str, kind: str, **params: Any) -> dict[str, Any]:
        reply = self._client.post("/_sim/faults", json={"model": model, "kind": kind, **params})
        reply.raise_for_status()
        result: dict[str, Any] = reply.json()
        return result

    def faults(self) -> list[dict[str, Any]]:
        reply = self._client.get("/_sim/faults")
        reply.raise_for_status()
        result: list[dict[str, Any]] = reply.json()
        return result

    def clear_faults(self) -> None:
        self._client.delete("/_sim/faults").raise_for_status()

    def requests(self, model: str | None = None) -> list[dict[str, Any]]:
        params = {"model": model} if model else None
        reply = self._client.get("/_sim/requests", params=params)
        reply.raise_for_status()
        result: list[dict[str, Any]] = reply.json()
        return result

    def clear_requests(self) -> None:
        self._client.delete("/_sim/requests").raise_for_status()

    def set_profile(self, model: str, **fields: Any) -> dict[str, Any]:
        reply = self._client.post("/_sim/models", json={"model": model, **fields})
        reply.raise_for_status()
        result: dict[str, Any] = reply.json()
        return result

    def reset(self) -> None:
        self.clear_faults()
        self.set_profile("*", **FAST_PROFILE)
        self.clear_requests()

    # --- the process ----------------------------------------------------------------------
    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, as a service manager would; returns the exit code."""
        self._client.close()
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return int(self.process.returncode)


def start_live_app(
    base_dir: Path,
    *,
    cli_args: Sequence[str] = (),
    serve_args: Sequence[str] = (),
    env: Mapping[str, str | None] | None = None,
    stderr_path: Path | None = None,
    chain_text: str = TEST_CHAIN,
    port: int | None = None,
) -> LiveApp:
    """`understudy [cli_args] serve [serve_args]`; ``env`` overrides (None: unset) the test
    environment; stderr goes to ``stderr_path`` when given, else with stdout to server.log.
    Called again with the same ``base_dir`` and the stopped app's ``port``, it restarts that app
    (same data folder and address)."""
    data_dir = base_dir / "data"
    chain = base_dir / "chain.toml"
    chain.write_text(chain_text)
    port = port or free_port()
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("UNDERSTUDY_") and k not in PROVIDER_KEYS
    }
    environment.update(
        UNDERSTUDY_DATA_DIR=str(data_dir),
        UNDERSTUDY_ADMIN_PASSWORD=ADMIN_PASSWORD,
        UNDERSTUDY_CHAIN=str(chain),
        UNDERSTUDY_ANSWER_NOW_AFTER_S=str(ANSWER_NOW_AFTER_S),
        PYTHONUNBUFFERED="1",
    )
    for name, value in (env or {}).items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    log_path = base_dir / "server.log"
    command = [*understudy_command(), *cli_args, "serve", "--host", "127.0.0.1"]
    with contextlib.ExitStack() as files:
        log_file = files.enter_context(log_path.open("wb"))
        err_file = files.enter_context(stderr_path.open("wb")) if stderr_path else None
        process = subprocess.Popen(
            [*command, "--port", str(port), *serve_args],
            cwd=base_dir,  # not the repository: templates and static must be found anyway
            env=environment,
            stdout=log_file,
            stderr=err_file or subprocess.STDOUT,
        )
    app = LiveApp(
        url=f"http://127.0.0.1:{port}",
        admin_password=ADMIN_PASSWORD,
        database_url=f"sqlite+aiosqlite:///{data_dir / 'understudy.db'}",
        data_dir=data_dir,
        process=process,
        log_path=log_path,
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if not app.alive():
            raise RuntimeError(f"understudy serve exited with {process.returncode}:\n{app.log()}")
        try:
            if httpx.get(f"{app.url}/healthz", timeout=1.0).status_code == 200:
                return app
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            app.stop()
            raise RuntimeError(
                f"understudy serve did not answer in {START_TIMEOUT_S}s:\n{app.log()}"
            )
        time.sleep(0.1)


class LiveAppManager:
    def __init__(self) -> None:
        self.current: LiveApp | None = None
        self._dirs: list[Path] = []

    def get(self) -> LiveApp:
        if self.current is None or not self.current.alive():
            base = Path(tempfile.mkdtemp(prefix="understudy-live-"))
            self._dirs.append(base)
            self.current = start_live_app(base)
        return self.current

    def close(self) -> None:
        if self.current is not None:
            self.current.stop()
        for path in self._dirs:
            shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def live_app_manager() -> Iterator[LiveAppManager]:
    manager = LiveAppManager()
    yield manager
    manager.close()


@pytest.fixture
def live_app(live_app_manager: LiveAppManager) -> LiveApp:
    """The shared live server, reset for this test (no faults, fast models, empty request log)."""
    app = live_app_manager.get()
    app.reset()
    return app


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
        ],
    }


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark browser tests `ui` and run them last: Playwright's sync API keeps an event loop
    running in the main thread once a browser is up, which pytest-asyncio tests cannot share."""
    ui_dir = ROOT / "tests" / "ui"
    ui = []
    for item in items:
        if ui_dir in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.ui)
            ui.append(item)
    if ui:
        ui_ids = {id(item) for item in ui}
        items[:] = [item for item in items if id(item) not in ui_ids] + ui


SERVER_LOG_LINES = 80


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failed test that used a live server shows the end of that server's log with its
    report: a failure seen once on CI must be explainable from its output alone."""
    report = yield
    if report.failed:
        funcargs = getattr(item, "funcargs", {})
        apps = {id(v): v for v in funcargs.values() if isinstance(v, LiveApp)}
        for app in apps.values():
            tail = "\n".join(app.log().splitlines()[-SERVER_LOG_LINES:])
            report.sections.append((f"server log ({app.url}, last lines)", tail))
    return report


# Last: it builds on the live server's helpers above (support.cluster imports them from here).
from support.cluster import cluster, two_servers  # noqa: E402, F401
