"""AppState: what the running app holds, typed, in one frozen object (``app.state.understudy``).

It is built in two steps because half of it cannot exist before the app starts. create_app makes
what the settings alone decide (the templates, the admin's AdminAuth); the lifespan makes the
async half (database engine and sessions, chain, runner, the simulator's control client) and only
then knows the final settings: in demo mode the simulator binds port 0 and the settings learn its
URL. So the lifespan builds the AppState from create_app's pieces and attaches it once; nothing
adds to it later.

Before the lifespan has run (or in a test that never runs it) there is no AppState: routes fail
loudly through :meth:`AppState.of`, while error pages and the template context do without it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
from fastapi.templating import Jinja2Templates
from starlette.applications import Starlette

from web.admin_auth import AdminAuth
from web.bus import Bus
from web.chain import Chain
from web.commands import TurnCommands
from web.db.session import Factory
from web.deferral import Deferral
from web.deferral_worker import DeferralWorker
from web.drills import Drills
from web.landings import Landings
from web.processes import ProcessLease
from web.ratelimit import SlidingWindow
from web.runner import TurnRunner
from web.settings import Settings
from web.sim.access import SimAccess
from web.trash import Trash

_ATTRIBUTE = "understudy"


@dataclass(frozen=True)
class AppState:
    settings: Settings
    """The settings in force: in demo mode, pointed at the simulator that was started."""
    sessions: Factory
    chain: Chain
    runner: TurnRunner
    templates: Jinja2Templates
    admin: AdminAuth
    sim_client: httpx.AsyncClient | None
    """The simulator's control API (the outage panel), in demo mode only."""
    demo_mode: bool
    """Every tier answers from a simulator."""
    new_chats: SlidingWindow
    """New conversations per browser session (UNDERSTUDY_NEW_CHATS_PER_MINUTE)."""
    trash: Trash
    """Deleted conversations waiting for an undo (its sweep runs from the lifespan)."""
    drills: Drills
    """The running drill, if any, and its faults (web.drills)."""
    process: ProcessLease
    """This process's lease (web.processes): its id goes on every turn it opens."""
    deferral: Deferral | None = None
    """The [deferral] table in force (None: a turn no tier can answer fails)."""
    worker: DeferralWorker | None = None
    """The deferral worker of this process (None with `serve --no-worker`, or no deferral)."""
    landings: Landings = field(default_factory=Landings)
    """Wakes the pages of queued turns when their reply lands."""
    commands: TurnCommands | None = None
    """Stop and "Answer now" wherever the turn runs (web.commands); the lifespan sets it."""
    bus: Bus | None = None
    """The channel to the other processes (web.bus), with UNDERSTUDY_REDIS_URL."""
    sim_access: SimAccess = field(default_factory=SimAccess)
    """Who may use /_sim and the outage panel (loopback only unless UNDERSTUDY_EXPOSE_SIM=1)."""

    def attach(self, app: Starlette) -> None:
        setattr(app.state, _ATTRIBUTE, self)

    @classmethod
    def find(cls, app: Starlette) -> AppState | None:
        state = getattr(app.state, _ATTRIBUTE, None)
        return state if isinstance(state, cls) else None

    @classmethod
    def of(cls, app: Starlette) -> AppState:
        state = cls.find(app)
        if state is None:
            raise RuntimeError("The app has not started: its lifespan builds the AppState.")
        return state
