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


# FastAPI runs a plain ``def`` dependency in a worker thread: a thread hop (and an anyio task
# group) per dependency and request. These read nothing but the request, so they run inline.


async def _settings(request: Request) -> Settings:
    return settings_of(request)


async def _sessions(request: Request) -> Factory:
    return sessions_of(request)


async def _runner(request: Request) -> TurnRunner:
    return runner_of(request)


async def _commands(request: Request) -> TurnCommands:
    return commands_of(request)


async def _trash(request: Request) -> Trash:
    return trash_of(request)


async def _owner(request: Request) -> str:
    return owner_of(request)


SettingsDep = Annotated[Settings, Depends(_settings)]
SessionsDep = Annotated[Factory, Depends(_sessions)]
RunnerDep = Annotated[TurnRunner, Depends(_runner)]
CommandsDep = Annotated[TurnCommands, Depends(_commands)]
TrashDep = Annotated[Trash, Depends(_trash)]
OwnerDep = Annotated[str, Depends(_owner)]
CSRF = [Depends(verify_csrf)]
