"""`understudy worker`: the deferral worker (web.deferral_worker) as a process of its own.

Run it beside `understudy serve --no-worker` processes (or several of them, against PostgreSQL:
they never take the same job). It needs the tiers' API keys or UNDERSTUDY_SIM_URL: the embedded
simulator of demo mode lives inside `understudy serve`. Replies it lands reach open pages at once
through the bus with UNDERSTUDY_REDIS_URL (web.bus), else through their streams' poll of the
database (web.routes.stream) within a few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import uuid

import click

from web.app import breakers_for, deferral_worker
from web.bus import Bus
from web.chain import Chain
from web.db.migrate import check_database
from web.db.session import make_engine, make_sessionmaker
from web.deferral import Deferral
from web.landings import LANDED
from web.redact import register_secrets
from web.settings import ConfigError, Settings

log = logging.getLogger(__name__)


def run_worker(settings: Settings) -> int:
    if not settings.api_keys and not settings.sim_url:
        raise ConfigError(
            "understudy worker needs the tiers' API keys, or UNDERSTUDY_SIM_URL pointing at a "
            "running simulator (`understudy sim`): demo mode's simulator lives inside "
            "`understudy serve`, which then runs its own worker."
        )
    deferral = Deferral.from_settings(settings)
    if deferral is None:
        raise ConfigError(
            f"{settings.chain_file} has no [deferral] table (or its backend's key is not set): "
            "there is nothing for a worker to do."
        )
    check_database(settings.database_url)
    register_secrets(*settings.secrets())
    asyncio.run(_main(settings, deferral))
    return 0


async def _main(settings: Settings, deferral: Deferral) -> None:
    engine = make_engine(settings.database_url, sqlite_inline=settings.sqlite_inline)
    sessions = make_sessionmaker(engine)
    chain = Chain.from_settings(settings, breakers_for(settings))
    bus = None
    if settings.redis_url:
        bus = Bus(settings.redis_url, settings.redis_prefix, f"worker-{uuid.uuid4().hex}")
        await bus.start()
    on_done = None if bus is None else (lambda turn_id: bus.post(LANDED, turn=turn_id))
    worker = deferral_worker(settings, sessions, chain, deferral, on_done)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    worker.start()
    click.echo(f"Understudy worker {worker.name}: {deferral.backend.value} jobs, Ctrl-C stops.")
    try:
        await stop.wait()
    finally:
        await worker.close()
        if bus is not None:
            await bus.aclose()
        await chain.aclose()
        if chain.breakers is not None:
            await chain.breakers.aclose()
        await engine.dispose()
