"""Who may see /admin: the login and logout routes, and AdminDep, the guard of every other page.

    GET  /admin/login?next=...   the form (an admin already logged in goes straight to ``next``)
    POST /admin/login            password, next: 303 to ``next``; 401 wrong; 429 rate limited
    POST /admin/logout

What a login is, and why it cannot outlive a logout, a password change or a restart:
web.admin_auth.
"""

from __future__ import annotations

import logging
import time
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from web.admin_auth import SESSION_KEY
from web.db.chat import move_conversations
from web.deps import CSRF, state_of
from web.routes.admin_render import render
from web.security import rotate_session

log = logging.getLogger(__name__)

router = APIRouter(prefix="/admin")

LOGIN_PATH = "/admin/login"


class LoginRequired(Exception):
    """Raised by :func:`require_admin`; web.app answers it with a 303 to the login page (a
    dependency cannot return a response)."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


def is_admin(request: Request) -> bool:
    return state_of(request).admin.admits(request.session.get(SESSION_KEY), time.time())


async def require_admin(request: Request) -> None:
    if is_admin(request):
        return
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    raise LoginRequired(f"{LOGIN_PATH}?{urlencode({'next': target})}")


AdminDep = Annotated[None, Depends(require_admin)]
"""A handler with an ``AdminDep`` parameter runs only for a logged-in admin; anyone else is
redirected to the login page, which brings them back to the same address."""


def _safe_next(value: str | None) -> str:
    if value and value.startswith("/admin") and not value.startswith("//"):
        return value
    return "/admin"


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.get("/login")
async def login_page(request: Request, next: str | None = None) -> Response:
    if is_admin(request):
        return RedirectResponse(_safe_next(next), status_code=303)
    return render(request, "admin/login.html", {"next": _safe_next(next), "error": None})


@router.post("/login", dependencies=CSRF)
async def login(
    request: Request,
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/admin",
) -> Response:
    client, now = _client(request), time.time()
    auth = state_of(request).admin
    wait = auth.limiter.retry_after(client, now)
    if wait is not None:
        seconds = max(1, round(wait))
        log.warning("admin login refused: too many failed attempts from %s", client)
        return render(
            request,
            "admin/login.html",
            {
                "next": _safe_next(next),
                "error": f"Too many failed logins. Try again in {seconds} seconds.",
            },
            status_code=429,
            **{"Retry-After": str(seconds)},
        )
    if not auth.password_matches(password):
        auth.limiter.failed(client, now)
        log.warning("admin login failed from %s", client)
        return render(
            request,
            "admin/login.html",
            {"next": _safe_next(next), "error": "Wrong password."},
            status_code=401,
        )
    auth.limiter.succeeded(client)
    await _rotate(request)
    request.session[SESSION_KEY] = auth.login(now)
    log.info("admin logged in from %s", client)
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/logout", dependencies=CSRF)
async def logout(request: Request) -> Response:
    state_of(request).admin.logout(request.session.pop(SESSION_KEY, None))
    await _rotate(request)
    return RedirectResponse(LOGIN_PATH, status_code=303)


async def _rotate(request: Request) -> None:
    """A new session id and CSRF token; the browser's conversations go with it. The redirect
    that follows loads a page with the new token."""
    old, new = rotate_session(request)
    await move_conversations(state_of(request).sessions, old, new)
