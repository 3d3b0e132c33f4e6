"""`understudy serve`: the app under uvicorn, from any working directory.

Prints the URL once the socket is bound (so ``--port 0`` shows the real port), the chain's
line-up (which tiers run, which are left out for want of a key and which variable would bring
them back: web.lineup) and, when no UNDERSTUDY_ADMIN_PASSWORD is set, the admin password
generated for this run, once, on stdout with click.echo: never through logging, so it reaches no
log file (and web.redact scrubs it anyway).

Slow clients: a request's line and headers must arrive within UNDERSTUDY_HEADER_TIMEOUT_S (10 s,
web.header_timeout) and be at most 16 KiB; an idle kept-alive connection closes after 5 s.
Behind a reverse proxy, ``--proxy-headers`` takes the client address (which the admin login's
lockout is keyed by) from X-Forwarded-For, but only from the ``--forwarded-allow-ips`` addresses.
"""

from __future__ import annotations

import gc
import logging
import socket
from dataclasses import dataclass

import click
import uvicorn
from fastapi import FastAPI

from web.app import create_app
from web.db.migrate import check_database
from web.header_timeout import MAX_HEAD_BYTES, protocol_with_timeout
from web.lineup import LineUp
from web.settings import ConfigError, Settings
from web.sim.access import startup_notice
from web.state import AppState
from web.storage import private_dir

GRACEFUL_SHUTDOWN_S = 5
"""Open reply streams get this long to close on SIGTERM; running turns are then recorded."""
KEEP_ALIVE_S = 5
"""An idle kept-alive connection is closed after this (uvicorn's default, set explicitly)."""
LOOPBACK = "127.0.0.1,::1"
"""The proxy addresses trusted with --proxy-headers when --forwarded-allow-ips is not given."""


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI, *, announces: bool = True) -> None:
        """``announces``: print the URL and the rest once started (a worker of `--workers N`
        does not: its parent prints them once for all)."""
        super().__init__(config)
        self._app = app
        self._announces = announces

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            # Everything made so far (modules, templates, clients) lives as long as the process:
            # keep it out of the collector's full passes, which otherwise pause streaming for
            # ~200 ms. Here, once per process, not in the app's lifespan: a process that makes
            # many apps (the tests) would keep every one of them frozen forever.
            gc.collect()
            gc.freeze()
            if self._announces:
                announce(self, self._app)


def serve(
    host: str,
    port: int,
    *,
    proxy_headers: bool = False,
    forwarded_allow_ips: str | None = None,
    run_worker: bool = True,
    workers: int = 1,
) -> int:
    """``workers`` > 1: that many processes on one port (web.workers)."""
    quiet_http_clients()
    settings = Settings.from_env()
    _check_storage(settings)
    listen = Listen(host, port, proxy_headers, forwarded_allow_ips, run_worker)
    if workers > 1:
        from web.workers import run_workers

        return run_workers(settings, listen, workers)
    app = create_app(settings, served_host=host, run_worker=run_worker)
    server = _Server(server_config(app, settings, listen), app)
    server.run()
    return 0 if server.started else 1


@dataclass(frozen=True)
class Listen:
    """Where and how the app listens: `understudy serve`'s options."""

    host: str
    port: int
    proxy_headers: bool = False
    forwarded_allow_ips: str | None = None
    run_worker: bool = True


def quiet_http_clients() -> None:
    # One line per model request is the turn log's job, not the HTTP clients'.
    for name in ("httpx", "httpx2"):
        logging.getLogger(name).setLevel(logging.WARNING)


def server_config(app: FastAPI, settings: Settings, listen: Listen) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=listen.host,
        port=listen.port,
        log_config=None,  # keep the CLI's logging set-up
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        loop="uvloop",  # each step of the loop (a socket read, a timer, a task) costs less
        http=protocol_with_timeout(settings.header_timeout_s),
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        timeout_keep_alive=KEEP_ALIVE_S,
        proxy_headers=listen.proxy_headers,
        forwarded_allow_ips=(listen.forwarded_allow_ips or LOOPBACK)
        if listen.proxy_headers
        else LOOPBACK,
    )


def _check_storage(settings: Settings) -> None:
    """Fail before uvicorn starts, in one line, when the data folder or database is unusable
    (inside the app's start-up the same failure would be a long uvicorn traceback)."""
    try:
        private_dir(settings.data_dir)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the data folder {settings.data_dir} ({exc.strerror or exc}). "
            "Check UNDERSTUDY_DATA_DIR."
        ) from None
    check_database(settings.database_url)


def announce(server: uvicorn.Server, app: FastAPI) -> None:
    bound = next((sock.getsockname() for lst in server.servers for sock in lst.sockets), None)
    state = AppState.of(app)
    generated = state.admin.password if state.admin.generated else None
    print_banner(bound, state.settings, demo=state.demo_mode, generated_password=generated)


def print_banner(
    bound: tuple[str, int] | None,
    settings: Settings,
    *,
    demo: bool,
    generated_password: str | None,
    workers: int = 1,
) -> None:
    """What `understudy serve` says once it listens: ``bound`` is the socket's (host, port)."""
    bound_host, url = "", None
    if bound is not None:
        bound_host, bound_port = bound[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        url = f"http://{shown}:{bound_port}/"
    click.echo(f"Understudy is running at {url}" + (f" ({workers} workers)" if workers > 1 else ""))
    if demo:
        click.echo(f"Demo mode: replies come from the simulated upstream at {settings.sim_url}.")
    lineup = LineUp.of(settings)
    click.echo(lineup.chain_line())
    left_out = lineup.left_out_line()
    if left_out:
        click.echo(left_out)
    notice = startup_notice(bound_host, settings.expose_sim)
    if notice and (demo or settings.expose_sim):
        click.echo(notice)
    if generated_password:
        click.echo(
            "Admin page /admin password for this run (set UNDERSTUDY_ADMIN_PASSWORD to choose "
            f"one): {generated_password}"
        )
