"""What routes take from the running app, typed once: handler signatures read like a spec."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates

from web.db.session import Factory
from web.runner import TurnRunner
from web.security import owner_of, verify_csrf
from web.settings import Settings


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def sessions_of(request: Request) -> Factory:
    sessions: Factory = request.app.state.sessions
    return sessions


def runner_of(request: Request) -> TurnRunner:
    runner: TurnRunner = request.app.state.runner
    return runner


def templates_of(request: Request) -> Jinja2Templates:
    templates: Jinja2Templates = request.app.state.templates
    return templates


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


SettingsDep = Annotated[Settings, Depends(settings_of)]
SessionsDep = Annotated[Factory, Depends(sessions_of)]
RunnerDep = Annotated[TurnRunner, Depends(runner_of)]
TemplatesDep = Annotated[Jinja2Templates, Depends(templates_of)]
OwnerDep = Annotated[str, Depends(owner_of)]
CSRF = [Depends(verify_csrf)]
