"""create_app(settings): the FastAPI app, its routers, templates, error pages and lifespan.

At start: the database is upgraded; this process announces itself with a lease (web.processes)
and the live turns of processes that died are marked interrupted (never those of another live
process);
with no API keys (and no UNDERSTUDY_SIM_URL) the simulated upstream starts in this process and
every tier points at it (demo mode, its control API mounted at /_sim); the sweep of deleted
conversations (web.trash) starts, and, with a [deferral] table, the worker that lands queued
replies (web.deferral_worker; not with `serve --no-worker`). The chain's line-up is logged: which
tiers run and which are left out because their key is not set (web.lineup). At shutdown: the
worker finishes its step, running turns are cancelled and recorded "interrupted" with their
partial text, the process's lease is given up, then the simulator stops.

What the running app holds is one AppState (web.state), attached by the lifespan; why it is built
there and not here is that module's docstring.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from web import __version__
from web.admin_auth import AdminAuth
from web.breaker_store import Breakers, BreakerStore, LocalStore, RedisStore
from web.bus import Bus
from web.chain import Chain
from web.commands import TurnCommands
from web.db.deferred import turn_status
from web.db.migrate import upgrade_database
from web.db.session import Factory, make_engine, make_sessionmaker
from web.deferral import Deferral
from web.deferral_backends import backend_for
from web.deferral_config import Backend as BackendKind
from web.deferral_worker import LEASE_S, DeferralWorker
from web.deps import is_htmx
from web.drills import Drills
from web.errors import AppError
from web.landings import LANDED, Landings
from web.lineup import LineUp
from web.live import LiveTurns, LocalLiveTurns
from web.live_redis import RedisLiveTurns
from web.metrics import Metrics
from web.metrics_shared import check_multiprocess
from web.processes import ProcessLease
from web.providers.anthropic_batches import AnthropicBatches
from web.ratelimit import SlidingWindow
from web.redact import register_secrets
from web.resources import STATIC_DIR, TEMPLATES_DIR
from web.routes import (
    admin,
    admin_drills,
    admin_login,
    chat,
    demo,
    drills_api,
    metrics,
    sidebar,
    stream,
    trash,
    upgrade,
)
from web.routes.admin_login import LoginRequired
from web.routes.demo import sim_client
from web.runner import DEADLINE_GRACE_S, TurnRunner
from web.security import csrf_token, install_security
from web.settings import Settings
from web.sim import SIM_PLACEHOLDER_KEY, sim_base_url
from web.sim.access import SimAccess
from web.sim.proxy import ControlProxy
from web.sim.server import SimServer, control_app
from web.state import AppState
from web.storage import private_dir
from web.times import install_filters
from web.trash import Trash

log = logging.getLogger(__name__)


def _template_context(request: Request) -> dict[str, Any]:
    state = AppState.find(request.app)  # None for an error page before the lifespan ran
    return {
        "csrf_token": csrf_token(request),
        "demo_mode": state is not None and state.demo_mode,
        "asset_version": __version__,
    }


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(
        directory=str(TEMPLATES_DIR), context_processors=[_template_context]
    )
    install_filters(templates.env)
    # A template is read once per process: checking its file's mtime at every render cost ~1 %
    # of a streaming server's CPU (`understudy serve` has no reload mode to keep it for).
    templates.env.auto_reload = False
    return templates


def breakers_for(settings: Settings) -> Breakers:
    """One breaker per tier; in Redis when UNDERSTUDY_REDIS_URL is set, so processes agree."""
    store: BreakerStore = LocalStore()
    if settings.redis_url:
        store = RedisStore(settings.redis_url, prefix=f"{settings.redis_prefix}breaker:")
    return Breakers({t.name: t.breaker for t in settings.tiers}, store)


def _shared_live_state(
    settings: Settings, sessions: Factory, process_id: str, landings: Landings
) -> tuple[Bus | None, LiveTurns]:
    """With UNDERSTUDY_REDIS_URL: the bus to the other processes (commands, landings) and live
    turns any process can follow (web.live_redis). Without: this process's live turns alone."""
    if not settings.redis_url:
        return None, LocalLiveTurns()
    bus = Bus(settings.redis_url, settings.redis_prefix, process_id)
    landings.relay = lambda turn_id: bus.post(LANDED, turn=turn_id)
    bus.on(LANDED, lambda message: landings.heard(str(message.get("turn"))))

    async def is_live(turn_id: str) -> bool:
        status = await turn_status(sessions, turn_id)
        return status is not None and status.is_live

    return bus, RedisLiveTurns(settings.redis_url, settings.redis_prefix, is_live)


def wants_embedded_sim(settings: Settings) -> bool:
    return settings.sim_url is None and (not settings.api_keys or settings.expose_sim)


def deferral_worker(
    settings: Settings,
    sessions: Factory,
    chain: Chain,
    deferral: Deferral,
    on_done: Callable[[str], None] | None = None,
    metrics: Metrics | None = None,
) -> DeferralWorker:
    """The worker for the chain file's [deferral] table, with its backend pointed where the tiers
    are (the simulator's Message Batches endpoints in demo mode)."""
    batches = None
    if deferral.backend is BackendKind.ANTHROPIC_BATCH:
        if settings.sim_url:
            key, base_url = SIM_PLACEHOLDER_KEY, sim_base_url(settings.sim_url, "anthropic")
        else:
            assert deferral.config.api_key_env is not None
            key, base_url = settings.api_keys[deferral.config.api_key_env], None
        batches = AnthropicBatches(api_key=key, base_url=base_url)
    backend = backend_for(deferral, chain, batches)
    if batches is None:
        # A retry step is a whole turn of the chain: one job a look, leased past its deadline,
        # so no other worker takes it over while it runs.
        lease_s = settings.turn_deadline_s + LEASE_S
        return DeferralWorker(
            sessions,
            deferral,
            backend,
            on_done=on_done,
            lease_s=lease_s,
            claim=1,
            metrics=metrics,
        )
    return DeferralWorker(sessions, deferral, backend, on_done=on_done, metrics=metrics)


def create_app(
    settings: Settings,
    *,
    served_host: str | None = None,
    run_worker: bool = True,
    shared_sim: str | None = None,
) -> FastAPI:
    """`served_host`: what `understudy serve --host` binds, a Host that /_sim accepts when exposed.
    `run_worker`: run the deferral worker in this process (`serve --no-worker`: another does).
    `shared_sim`: a worker of `serve --workers N` in demo mode: the simulator its parent runs for
    every worker (settings.sim_url), whose control API /_sim forwards to (web.sim.proxy)."""
    sim = SimServer() if shared_sim is None and wants_embedded_sim(settings) else None
    proxy = ControlProxy(shared_sim) if shared_sim is not None else None
    sim_access = SimAccess(expose=settings.expose_sim, served_host=served_host)
    templates = make_templates()
    admin_auth = AdminAuth.from_settings(settings)
    register_secrets(*settings.secrets(), admin_auth.password)
    if settings.metrics_dir is not None:
        check_multiprocess(settings.metrics_dir)  # before serving: `serve` says it and exits

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        current = settings
        private_dir(current.data_dir)
        await asyncio.to_thread(upgrade_database, current.database_url)
        engine = make_engine(current.database_url, sqlite_inline=current.sqlite_inline)
        sessions = make_sessionmaker(engine)
        lease = ProcessLease(
            sessions,
            lease_s=current.lease_s,
            orphan_after_s=current.turn_deadline_s + DEADLINE_GRACE_S + current.lease_s,
        )
        await lease.start()
        if sim is not None:
            await sim.start("127.0.0.1", 0)
            if not current.api_keys:
                current = current.with_sim(sim.url)
            log.info("simulated upstream at %s (control API at /_sim)", sim.url)
        LineUp.of(current).log(log)
        chain = Chain.from_settings(current, breakers_for(current))
        deferral = Deferral.from_settings(current)
        landings = Landings()
        bus, live_turns = _shared_live_state(current, sessions, lease.id, landings)
        app_metrics = Metrics((t.info for t in chain.tiers), shared_dir=current.metrics_dir)
        worker = None
        if deferral is not None and run_worker:
            worker = deferral_worker(
                current, sessions, chain, deferral, landings.notify, metrics=app_metrics
            )
        runner = TurnRunner(
            chain,
            sessions,
            deadline_s=current.turn_deadline_s,
            deferral=deferral,
            on_queued=worker.wake if worker is not None else None,
            metrics=app_metrics,
            live_turns=live_turns,
        )
        demo = current.sim_url is not None  # every tier answers from a simulator
        state = AppState(
            settings=current,
            sessions=sessions,
            chain=chain,
            runner=runner,
            templates=templates,
            admin=admin_auth,
            sim_client=sim_client(current.sim_url) if current.sim_url and demo else None,
            demo_mode=demo,
            sim_access=sim_access,
            new_chats=SlidingWindow(current.new_chats_per_minute),
            trash=Trash(sessions),
            drills=Drills(sessions, current),
            deferral=deferral,
            worker=worker,
            landings=landings,
            commands=TurnCommands(runner, live_turns, bus),
            bus=bus,
            process=lease,
        )
        state.attach(app)
        if bus is not None:
            await bus.start()
        lease.beat_in_background(runner.is_running)
        state.trash.start()
        if worker is not None:
            worker.start()
        try:
            yield
        finally:
            await state.trash.close()
            if worker is not None:
                await worker.close()
            await runner.shutdown()
            app_metrics.close()  # in multiprocess mode, its live turns stop counting
            await live_turns.aclose()
            if bus is not None:
                await bus.aclose()
            await lease.close()
            await state.drills.aclose()
            if state.sim_client is not None:
                await state.sim_client.aclose()
            await chain.aclose()
            if chain.breakers is not None:
                await chain.breakers.aclose()
            if sim is not None:
                await sim.stop()
            if proxy is not None:
                await proxy.aclose()
            await engine.dispose()

    app = FastAPI(
        title="Understudy",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    install_security(app, settings)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    if sim is not None:
        app.mount("/_sim", sim_access.guard(control_app(sim)), name="sim")
    elif proxy is not None:
        app.mount("/_sim", sim_access.guard(proxy.app), name="sim")
    app.include_router(chat.router)
    app.include_router(stream.router)
    app.include_router(upgrade.router)
    app.include_router(sidebar.router)
    app.include_router(trash.router)
    app.include_router(demo.router)
    app.include_router(admin_login.router)
    app.include_router(admin.router)
    app.include_router(admin_drills.router)
    app.include_router(drills_api.router)
    app.include_router(metrics.router)
    _install_error_pages(app, templates)
    return app


def _install_error_pages(app: FastAPI, templates: Jinja2Templates) -> None:
    # The templates come from create_app, not from the AppState: an error can happen before
    # the lifespan has built it (or in a test that never starts the app).
    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse(exc.location, status_code=303)

    @app.exception_handler(AppError)
    async def app_error(request: Request, exc: AppError) -> Response:
        response = error_response(templates, request, exc.status, exc.title, exc.message)
        response.headers.update(exc.headers)
        return response

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404 and exc.detail == "Not Found":
            message = "There is no page at this address."
        elif exc.status_code == 405:
            message = "This address does not accept that kind of request."
        else:
            message = str(exc.detail)
        response = error_response(
            templates, request, exc.status_code, http_error_title(exc.status_code), message
        )
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        fields = sorted(
            {".".join(str(p) for p in err.get("loc", ())[1:]) or "body" for err in exc.errors()}
        )
        message = f"The request was malformed ({', '.join(fields)} missing or invalid)."
        return error_response(templates, request, 422, "Malformed request", message)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(
            templates,
            request,
            500,
            "Something went wrong",
            "The server hit an unexpected error; try again.",
        )


HTTP_ERROR_TITLES = {
    400: "Bad request",
    401: "Sign in",
    403: "Refused",
    404: "Not found",
    405: "Not allowed",
    409: "Busy",
    413: "Too large",
    422: "Invalid request",
    429: "Too many requests",
}


def http_error_title(status: int) -> str:
    """The title of an error page for ``status``: ours, else the standard reason phrase."""
    if status in HTTP_ERROR_TITLES:
        return HTTP_ERROR_TITLES[status]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def error_response(
    templates: Jinja2Templates, request: Request, status: int, title: str, message: str
) -> Response:
    """A fragment for htmx requests (shown inline, by the composer), a full page otherwise."""
    if is_htmx(request):
        return templates.TemplateResponse(
            request, "_flash.html", {"title": title, "message": message}, status_code=status
        )
    if request.url.path.startswith(("/_sim", "/static")) or "text/html" not in request.headers.get(
        "accept", "text/html"
    ):
        return Response(f"{title}: {message}\n", status_code=status, media_type="text/plain")
    return templates.TemplateResponse(
        request, "error.html", {"title": title, "message": message}, status_code=status
    )
