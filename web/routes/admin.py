"""/admin: login, the degraded/failed turns page with stats and tier mix, CSV export, one turn.

Login state is ``request.session["admin"]``: a token derived from the admin password and a random
value made when the app starts, plus the login time. A changed password or a restart therefore
logs every admin out, and the cookie never carries the password or a hash of it alone. Failed
logins are limited per client address (LOGIN_LIMIT per LOGIN_WINDOW_S, then 429).
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import logging
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from web.db.admin_queries import (
    ListKind,
    TurnFilter,
    known_tiers,
    problem_turns,
    turn_detail,
    turns_for_export,
    window_stats,
)
from web.db.logged_turns import LoggedTurn
from web.db.session import read_scope
from web.db.tier_mix import tier_mix
from web.db.turns_cli import format_ms
from web.deps import sessions_of, settings_of, templates_of
from web.errors import NotFound
from web.providers.base import ErrorKind
from web.routes.admin_chart import build_chart
from web.security import csrf_token, verify_csrf

log = logging.getLogger(__name__)

router = APIRouter(prefix="/admin")

PER_PAGE = 25
LOGIN_LIMIT = 5
LOGIN_WINDOW_S = 60.0
ADMIN_SESSION_MAX_AGE_S = 12 * 3600
NO_STORE = {"Cache-Control": "no-store"}
RANGES = {"24h": timedelta(days=1), "7d": timedelta(days=7), "30d": timedelta(days=30)}
CSV_COLUMNS = (
    "started_at",
    "turn_id",
    "conversation_id",
    "status",
    "tier",
    "provider",
    "model",
    "why",
    "degraded_reason",
    "error_message",
    "attempts",
    "ttft_ms",
    "total_ms",
)


# --- login state -------------------------------------------------------------------------------


class LoginLimiter:
    """Failed logins per client address in a sliding window."""

    def __init__(self, limit: int = LOGIN_LIMIT, window_s: float = LOGIN_WINDOW_S) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_clients = 10_000
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, client: str, now: float) -> float | None:
        """Seconds until ``client`` may try again, or None if it may now."""
        failures = self._failures.get(client)
        if not failures:
            return None
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        if len(failures) < self.limit:
            return None
        return failures[0] + self.window_s - now

    def failed(self, client: str, now: float) -> None:
        if len(self._failures) >= self.max_clients:
            # Many addresses guessing: forget those whose failures have all left the window.
            stale = [c for c, f in self._failures.items() if not f or f[-1] <= now - self.window_s]
            for c in stale:
                del self._failures[c]
        self._failures.setdefault(client, deque()).append(now)

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)


def _state(request: Request, name: str, make: Any) -> Any:
    value = getattr(request.app.state, name, None)
    if value is None:
        value = make()
        setattr(request.app.state, name, value)
    return value


def _limiter(request: Request) -> LoginLimiter:
    limiter: LoginLimiter = _state(request, "admin_login_limiter", LoginLimiter)
    return limiter


def _admin_token(request: Request) -> str:
    nonce: bytes = _state(request, "admin_session_nonce", lambda: secrets.token_bytes(32))
    password = str(request.app.state.admin_password)
    return hmac.new(password.encode(), nonce, hashlib.sha256).hexdigest()


def is_admin(request: Request) -> bool:
    state = request.session.get("admin")
    if not isinstance(state, dict):
        return False
    token, at = state.get("token"), state.get("at")
    if not isinstance(token, str) or not isinstance(at, int | float):
        return False
    if time.time() - at > ADMIN_SESSION_MAX_AGE_S:
        return False
    return hmac.compare_digest(token, _admin_token(request))


def _login_redirect(request: Request) -> RedirectResponse | None:
    if is_admin(request):
        return None
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/admin/login?{urlencode({'next': target})}", status_code=303)


def _safe_next(value: str | None) -> str:
    if value and value.startswith("/admin") and not value.startswith("//"):
        return value
    return "/admin"


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _render(
    request: Request, name: str, context: dict[str, Any], status_code: int = 200, **headers: str
) -> Response:
    context = {
        "csrf_token": csrf_token(request),
        "format_ms": format_ms,
        "format_time": format_time,
        "format_clock": format_clock,
        **context,
    }
    response: Response = templates_of(request).TemplateResponse(
        request, name, context, status_code=status_code, headers={**NO_STORE, **headers}
    )
    return response


# --- routes ------------------------------------------------------------------------------------


@router.get("/login")
async def login_page(request: Request, next: str | None = None) -> Response:
    if is_admin(request):
        return RedirectResponse(_safe_next(next), status_code=303)
    return _render(request, "admin/login.html", {"next": _safe_next(next), "error": None})


@router.post("/login", dependencies=[Depends(verify_csrf)])
async def login(
    request: Request,
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/admin",
) -> Response:
    client, now = _client(request), time.time()
    limiter = _limiter(request)
    wait = limiter.retry_after(client, now)
    if wait is not None:
        seconds = max(1, round(wait))
        log.warning("admin login refused: too many failed attempts from %s", client)
        return _render(
            request,
            "admin/login.html",
            {
                "next": _safe_next(next),
                "error": f"Too many failed logins. Try again in {seconds} seconds.",
            },
            status_code=429,
            **{"Retry-After": str(seconds)},
        )
    expected = str(request.app.state.admin_password)
    if not hmac.compare_digest(password.encode(), expected.encode()):
        limiter.failed(client, now)
        log.warning("admin login failed from %s", client)
        return _render(
            request,
            "admin/login.html",
            {"next": _safe_next(next), "error": "Wrong password."},
            status_code=401,
        )
    limiter.succeeded(client)
    request.session["admin"] = {"token": _admin_token(request), "at": int(now)}
    log.info("admin logged in from %s", client)
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/logout", dependencies=[Depends(verify_csrf)])
async def logout(request: Request) -> Response:
    request.session.pop("admin", None)
    return RedirectResponse("/admin/login", status_code=303)


@router.get("")
@router.get("/")
async def dashboard(request: Request) -> Response:
    if redirect := _login_redirect(request):
        return redirect
    filters = Filters.from_query(request)
    now = datetime.now(UTC)
    async with read_scope(sessions_of(request)) as session:
        page = await problem_turns(
            session, filters.turn_filter(now), page=filters.page, per_page=PER_PAGE
        )
        stats = [
            await window_stats(session, now=now, window=timedelta(days=1), label="Last 24 hours"),
            await window_stats(session, now=now, window=timedelta(days=7), label="Last 7 days"),
        ]
        hourly = await tier_mix(
            session, now=now, window=timedelta(days=1), bucket=timedelta(hours=1)
        )
        daily = await tier_mix(session, now=now, window=timedelta(days=7), bucket=timedelta(days=1))
        tiers = await known_tiers(session)
    configured = [t.name for t in settings_of(request).tiers]
    return _render(
        request,
        "admin/dashboard.html",
        {
            "page": page,
            "stats": stats,
            "charts": [
                build_chart(hourly, "Tier mix, last 24 hours (per hour)"),
                build_chart(daily, "Tier mix, last 7 days (per day)"),
            ],
            "filters": filters,
            "tier_options": configured + [t for t in tiers if t not in configured],
            "reason_options": [k.value for k in ErrorKind],
            "kind_options": [k.value for k in ListKind],
            "range_options": ["all", *RANGES],
            "page_url": lambda n: f"/admin?{filters.query(page=n)}",
            "csv_url": f"/admin/degraded.csv?{filters.query(page=None)}",
        },
    )


@router.get("/degraded.csv")
async def degraded_csv(request: Request) -> Response:
    if redirect := _login_redirect(request):
        return redirect
    filters = Filters.from_query(request)
    async with read_scope(sessions_of(request)) as session:
        rows = await turns_for_export(session, filters.turn_filter(datetime.now(UTC)))
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return StreamingResponse(
        _csv_lines(rows),
        media_type="text/csv; charset=utf-8",
        headers={
            **NO_STORE,
            "Content-Disposition": f'attachment; filename="understudy-{filters.kind}-{stamp}.csv"',
        },
    )


@router.get("/turns/{turn_id}")
async def turn_page(request: Request, turn_id: str) -> Response:
    if redirect := _login_redirect(request):
        return redirect
    async with read_scope(sessions_of(request)) as session:
        detail = await turn_detail(session, turn_id[:64])
    if detail is None:
        raise NotFound("No turn with this id.")
    return _render(request, "admin/turn.html", {"detail": detail, "turn": detail.turn})


# --- filters -----------------------------------------------------------------------------------


class Filters:
    """The dashboard's query string, parsed leniently: an unknown value means "no filter"."""

    def __init__(
        self,
        kind: ListKind,
        tier: str,
        reason: str,
        range_: str,
        since: datetime | None,
        until: datetime | None,
        page: int,
    ) -> None:
        self.kind, self.tier, self.reason, self.range = kind, tier, reason, range_
        self.since, self.until, self.page = since, until, page

    @classmethod
    def from_query(cls, request: Request) -> Filters:
        q = request.query_params
        kind = q.get("kind", "")
        reason = q.get("reason", "")
        range_ = q.get("range", "all")
        return cls(
            kind=ListKind(kind) if kind in set(ListKind) else ListKind.DEGRADED,
            tier=q.get("tier", "")[:64],
            reason=reason if reason in {k.value for k in ErrorKind} else "",
            range_=range_ if range_ in RANGES else "all",
            since=_parse_local(q.get("since")),
            until=_parse_local(q.get("until")),
            page=_positive_int(q.get("page")),
        )

    def turn_filter(self, now: datetime) -> TurnFilter:
        since = self.since
        if since is None and self.range in RANGES:
            since = now - RANGES[self.range]
        return TurnFilter(
            kind=self.kind,
            tier=self.tier or None,
            reason=self.reason or None,
            since=since,
            until=self.until,
        )

    def query(self, *, page: int | None) -> str:
        params: dict[str, str] = {"kind": self.kind.value}
        for key, value in (("tier", self.tier), ("reason", self.reason)):
            if value:
                params[key] = value
        if self.range != "all":
            params["range"] = self.range
        if self.since:
            params["since"] = self.since.strftime("%Y-%m-%dT%H:%M")
        if self.until:
            params["until"] = self.until.strftime("%Y-%m-%dT%H:%M")
        if page is not None and page > 1:
            params["page"] = str(page)
        return urlencode(params)

    def input_value(self, moment: datetime | None) -> str:
        return moment.strftime("%Y-%m-%dT%H:%M") if moment else ""


def _parse_local(raw: str | None) -> datetime | None:
    """A datetime-local field ('2026-05-01T13:30'), read as UTC."""
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _positive_int(raw: str | None) -> int:
    try:
        return max(1, int(raw or "1"))
    except ValueError:
        return 1


def format_time(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S}"


def format_clock(moment: datetime) -> str:
    """The time of day to the millisecond: attempts of one turn are close together."""
    return f"{moment.astimezone(UTC):%H:%M:%S.%f}"[:-3]


# --- CSV ---------------------------------------------------------------------------------------


def _csv_cell(value: object) -> str:
    text = "" if value is None else str(value)
    # Spreadsheets run cells that start like a formula; provider error text is not ours.
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


async def _csv_lines(rows: tuple[LoggedTurn, ...]) -> AsyncIterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow(
            [
                _csv_cell(v)
                for v in (
                    row.started_at.isoformat(),
                    row.id,
                    row.conversation_id,
                    row.status,
                    row.tier,
                    row.provider,
                    row.model,
                    row.why,
                    row.degraded_reason,
                    row.error_message,
                    row.attempt_count,
                    None if row.ttft_ms is None else round(row.ttft_ms),
                    None if row.total_ms is None else round(row.total_ms),
                )
            ]
        )
        if buffer.tell() > 64_000:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
