"""`understudy serve --workers N`: N processes of the app on one port, and their parent.

The parent does, once, what must not be done by every worker or must be the same in all:

- it refuses N > 1 without UNDERSTUDY_REDIS_URL (a reply's stream may be served by another
  process than the one running its turn: Redis carries it between them);
- it runs the migrations (under an advisory lock on PostgreSQL, web.db.migrate), so workers
  never race on them;
- it makes the session signing key in the data folder (web.security) and, without
  UNDERSTUDY_ADMIN_PASSWORD, the admin password, printed once, and hands both to every worker;
- in demo mode it runs ONE simulator (a thread of the parent) for all workers: each worker's
  /_sim forwards to it (web.sim.proxy), so faults set through any worker hold for all;
- it makes a fresh, private PROMETHEUS_MULTIPROC_DIR (<data folder>/metrics-<parent pid>) that
  the workers inherit, for prometheus_client's multiprocess mode;
- it binds the socket, prints the URL and the chain once, starts the workers, starts another
  when one dies, and on SIGTERM or SIGINT stops them all (each finishes as `serve` does: streams
  closed, running turns recorded) and exits 0.

Why not uvicorn's own supervisor (uvicorn.supervisors.Multiprocess): it builds a plain
uvicorn.Server in each worker from a pickled Config, so it cannot run our server (gc.freeze once
started, web.server) and cannot carry our Config, whose HTTP protocol class is made at run time
(web.header_timeout) and does not pickle. This is the same design on uvicorn's parts: the parent
binds the socket, each worker is a spawned process that builds its own app and Config and runs
our server on the inherited socket. Each worker holds its own lease (web.processes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import secrets
import shutil
import signal
import socket
import sys
import threading
from dataclasses import dataclass, replace
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType

from web.app import create_app, wants_embedded_sim
from web.db.migrate import database_errors, upgrade_database
from web.logsafe import configure_logging
from web.redact import register_secrets
from web.security import secret_key
from web.server import Listen, _Server, print_banner, quiet_http_clients, server_config
from web.settings import ConfigError, Settings
from web.sim.server import SimServer
from web.storage import private_dir

log = logging.getLogger(__name__)

METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
STARTUP_FAILURE = 3
"""A worker's exit code when its app could not start: starting it again would fail the same way."""
SUPERVISE_S = 0.5
STOP_WAIT_S = 30.0
"""How long a worker may take to stop after SIGTERM (its streams, then its running turns)."""
SIM_START_S = 30.0

multiprocessing.allow_connection_pickling()  # the bound socket goes to each worker
_spawn = multiprocessing.get_context("spawn")


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker gets from its parent (pickled to the spawned process)."""

    listen: Listen
    log_level: int
    admin_password: str
    sim_url: str | None
    """The parent's simulator, in demo mode."""


def run_workers(settings: Settings, listen: Listen, workers: int) -> int:
    if not settings.redis_url:
        raise ConfigError(
            f"--workers {workers} needs UNDERSTUDY_REDIS_URL: a reply's stream may be served by "
            "another process than the one running its turn, and Redis carries it between them. "
            "Set it (e.g. redis://127.0.0.1:6379/0), or run one worker."
        )
    with database_errors(settings.database_url):
        upgrade_database(settings.database_url)
    secret_key(settings)  # made here once, read by every worker
    password = settings.admin_password or secrets.token_urlsafe(12)
    register_secrets(password)
    metrics_dir = _fresh_metrics_dir(settings.data_dir)
    os.environ[METRICS_DIR_VARIABLE] = str(metrics_dir)  # inherited by the spawned workers
    sim = _SimThread() if wants_embedded_sim(settings) and not settings.api_keys else None
    try:
        sim_url = sim.start() if sim is not None else None
        shown = settings.with_sim(sim_url) if sim_url else settings
        sock = _bind(listen)
        spec = WorkerSpec(listen, logging.getLogger().level, password, sim_url)
        print_banner(
            sock.getsockname(),
            shown,
            demo=shown.sim_url is not None,
            generated_password=None if settings.admin_password else password,
            workers=workers,
        )
        return _Supervisor(spec, sock, workers).run()
    finally:
        if sim is not None:
            sim.stop()
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _fresh_metrics_dir(data_dir: Path) -> Path:
    path = data_dir / f"metrics-{os.getpid()}"
    shutil.rmtree(path, ignore_errors=True)  # a pid reused since a crash: nothing of it counts
    private_dir(path)
    return path


def _bind(listen: Listen) -> socket.socket:
    family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((listen.host, listen.port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {listen.host}:{listen.port} ({exc.strerror or exc}). "
            "Choose another --port or --host."
        ) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class _Supervisor:
    def __init__(self, spec: WorkerSpec, sock: socket.socket, workers: int) -> None:
        self._spec = spec
        self._sock = sock
        self._count = workers
        self._stop = threading.Event()
        self._failed = False

    def run(self) -> int:
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        processes = [self._spawn() for _ in range(self._count)]
        try:
            while not self._stop.wait(SUPERVISE_S):
                for index, process in enumerate(processes):
                    if process.is_alive():
                        continue
                    if process.exitcode == STARTUP_FAILURE:
                        log.error("worker %s could not start; stopping", process.pid)
                        self._failed = True
                        self._stop.set()
                        break
                    log.warning(
                        "worker %s exited (code %s); starting another",
                        process.pid,
                        process.exitcode,
                    )
                    processes[index] = self._spawn()
        finally:
            for process in processes:
                if process.is_alive():
                    process.terminate()  # SIGTERM: the worker shuts down as `serve` does
            for process in processes:
                process.join(STOP_WAIT_S)
                if process.is_alive():
                    log.error("worker %s did not stop in %.0f s; killed", process.pid, STOP_WAIT_S)
                    process.kill()
                    process.join()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._sock.close()
        return 1 if self._failed else 0

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stop.set()

    def _spawn(self) -> BaseProcess:
        process = _spawn.Process(
            target=worker_main, args=(self._spec, self._sock), name="understudy-worker"
        )
        process.start()
        log.info("started worker %s", process.pid)
        return process


def worker_main(spec: WorkerSpec, sock: socket.socket) -> None:
    """A worker: the app, built here from the environment and its parent's spec, served on the
    parent's socket."""
    configure_logging(spec.log_level)
    quiet_http_clients()
    settings = replace(Settings.from_env(), admin_password=spec.admin_password)
    if spec.sim_url is not None:
        settings = settings.with_sim(spec.sim_url)
    app = create_app(
        settings,
        served_host=spec.listen.host,
        run_worker=spec.listen.run_worker,
        shared_sim=spec.sim_url,
    )
    server = _Server(server_config(app, settings, spec.listen), app, announces=False)
    server.run(sockets=[sock])
    sys.exit(0 if server.started else STARTUP_FAILURE)


class _SimThread:
    """The demo simulator of every worker, on its own event loop in a thread of the parent."""

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="understudy-sim", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._url: str | None = None

    def start(self) -> str:
        self._thread.start()
        if not self._ready.wait(SIM_START_S) or self._url is None:
            raise RuntimeError("the simulated upstream did not start")
        return self._url

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            with contextlib.suppress(RuntimeError):  # its loop has already ended
                self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        sim = SimServer()
        try:
            await sim.start("127.0.0.1", 0)
            self._loop, self._stopping = asyncio.get_running_loop(), asyncio.Event()
            self._url = sim.url
        finally:
            self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            await sim.stop()
