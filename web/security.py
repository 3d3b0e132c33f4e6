"""Browser-session ownership, CSRF and the security headers.

- A signed, HttpOnly, SameSite=lax session cookie carries a random session id and a CSRF token.
  Conversations are owned by ``sha256(session id)``: the database never holds the id itself.
  Admin login and logout rotate both (:func:`rotate_session`) and the conversations move along:
  any app on another port of the same host can plant a cookie, since cookies ignore ports.
- Every state-changing route depends on :func:`verify_csrf`: the token must come back in the form
  field ``csrf_token`` or the ``X-CSRF-Token`` header (htmx sends it through ``hx-headers``).
- Every response gets a CSP without inline scripts; model output is untrusted, so even if markup got
  through the escaping and the sanitiser, it could not run script or load remote images.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI, HTTPException, Request
from starlette.datastructures import MutableHeaders
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from web.settings import Settings
from web.storage import private_dir

log = logging.getLogger(__name__)

SESSION_COOKIE = "understudy_session"
SESSION_MAX_AGE_S = 400 * 24 * 3600
"""Browsers cap cookie lifetimes at 400 days; conversations belong to the session that long."""
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SECRET_FILE = "secret_key"

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
SECURITY_HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
)


class CSRFError(HTTPException):
    def __init__(self, detail: str) -> None:
        super().__init__(status_code=403, detail=detail)


def secret_key(settings: Settings) -> str:
    """UNDERSTUDY_SECRET_KEY, else a random key kept in the data folder (so sessions survive restarts)."""
    if settings.secret_key:
        return settings.secret_key
    path: Path = settings.data_dir / SECRET_FILE
    try:
        key = path.read_text(encoding="ascii").strip()
        if key:
            return key
    except FileNotFoundError:
        pass
    key = secrets.token_urlsafe(48)
    private_dir(settings.data_dir)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(key + "\n")
    log.info("generated a session signing key in %s", path)
    return key


def _session_value(request: Request, key: str) -> str:
    value = request.session.get(key)
    if not isinstance(value, str) or not value:
        value = secrets.token_urlsafe(32)
        request.session[key] = value
    return value


def owner_of(request: Request) -> str:
    """The owner hash of this browser session (the session is created on first use)."""
    sid = _session_value(request, "sid")
    return hashlib.sha256(sid.encode()).hexdigest()


def csrf_token(request: Request) -> str:
    return _session_value(request, "csrf")


def rotate_session(request: Request) -> tuple[str, str]:
    """A new session id and CSRF token for this browser (at admin login and logout), so a cookie
    planted or copied before is worth nothing after. Returns (old owner, new owner): the caller
    moves the conversations over."""
    old = owner_of(request)
    request.session["sid"] = secrets.token_urlsafe(32)
    request.session["csrf"] = secrets.token_urlsafe(32)
    return old, owner_of(request)


async def verify_csrf(request: Request) -> None:
    """FastAPI dependency: refuse a state-changing request without this session's CSRF token."""
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
        raise CSRFError("This request came from another site and was refused.")
    expected = request.session.get("csrf")
    sent = request.headers.get(CSRF_HEADER)
    if not sent:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            field = (await request.form()).get(CSRF_FIELD)
            sent = field if isinstance(field, str) else None
    if not isinstance(expected, str) or not sent or not hmac.compare_digest(sent, expected):
        raise CSRFError(
            "Your session's security token is missing or out of date. Reload the page and try again."
        )


class SecurityHeadersMiddleware:
    """Adds the CSP and friends to every HTTP response (pure ASGI, so streams are untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS:
                    if name.decode() not in headers:
                        headers.raw.append((name, value))
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install_security(app: FastAPI, settings: Settings) -> None:
    """The session cookie and the security headers, on every route (including /_sim and /static)."""
    app.add_middleware(
        SessionMiddleware,
        secret_key=secret_key(settings),
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_MAX_AGE_S,
        same_site="lax",
        https_only=False,
    )
    app.add_middleware(SecurityHeadersMiddleware)
