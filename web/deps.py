"""What routes take from the running app, typed once: handler signatures read like a spec.

Everything comes from the one :class:`~web.state.AppState`, through :func:`state_of`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates

from web.commands import TurnCommands
from web.db.session import Factory
from web.runner import TurnRunner
from web.security import owner_of, verify_csrf
from web.settings import Settings
from web.state import AppState
from web.trash import Trash


def state_of(request: Request) -> AppState:
    return AppState.of(request.app)


def settings_of(request: Request) -> Settings:
    return state_of(request).settings


def sessions_of(request: Request) -> Factory:
    return state_of(request).sessions


def runner_of(request: Request) -> TurnRunner:
    return state_of(request).runner


def commands_of(request: Request) -> TurnCommands:
    """Stop and "Answer now" wherever the turn runs (this process alone, if no bus is set)."""
    state = state_of(request)
    if state.commands is not None:
        return state.commands
    return TurnCommands(state.runner, state.runner.live_turns, None)


def templates_of(request: Request) -> Jinja2Templates:
    return state_of(request).templates


def trash_of(request: Request) -> Trash:
    return state_of(request).trash


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


SettingsDep = Annotated[Settings, Depends(settings_of)]
SessionsDep = Annotated[Factory, Depends(sessions_of)]
RunnerDep = Annotated[TurnRunner, Depends(runner_of)]
CommandsDep = Annotated[TurnCommands, Depends(commands_of)]
TrashDep = Annotated[Trash, Depends(trash_of)]
OwnerDep = Annotated[str, Depends(owner_of)]
CSRF = [Depends(verify_csrf)]
