"""The admin's login: one password, a token derived from it, a session age and a rate limit.

A logged-in admin's session holds ``{"token": ..., "at": <login time>, "id": <login id>}`` under
SESSION_KEY. The token is an HMAC of a random value made once per app (the nonce) keyed with the
admin password; the login id names a login the server keeps (:class:`AdminLogins`). So:

- a changed password logs every admin out, and so does a restart of a single process;
- logout ends the login on the server: a copy of the cookie taken before it opens nothing (a
  signed cookie alone cannot be taken back, so the server must know which logins are open);
- the cookie never carries the password or a hash of the password alone;
- a login expires ADMIN_SESSION_MAX_AGE_S after it was made, whatever the cookie says.

With UNDERSTUDY_REDIS_URL, several processes serve one app (a request may reach any of them):
the nonce and the open logins are then kept in Redis (:class:`RedisAdminLogins`), so a login made
through one process opens every process's pages and a logout closes them all; a process that
restarts logs nobody out.

Failed logins are limited per client address: after LOGIN_LIMIT in LOGIN_WINDOW_S, even the right
password gets 429 with a Retry-After until the oldest failure leaves the window. The routes that
use all this are in web.routes.admin_login. The limit is counted by each process (with several,
a client gets that many tries from each).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Protocol

from web.settings import Settings

log = logging.getLogger(__name__)

SESSION_KEY = "admin"
LOGIN_LIMIT = 5
LOGIN_WINDOW_S = 60.0
ADMIN_SESSION_MAX_AGE_S = 12 * 3600


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


class AdminLogins(Protocol):
    """The admin logins that are open, by id: what logout and a password change revoke.

    In this process (:class:`LocalAdminLogins`), or in Redis for several processes
    (:class:`RedisAdminLogins`).
    """

    def open(self, now: float) -> str: ...
    def is_open(self, login_id: str, now: float) -> bool: ...
    def close(self, login_id: str) -> None: ...
    def close_all(self) -> None: ...


class LocalAdminLogins:
    def __init__(self, max_age_s: float = ADMIN_SESSION_MAX_AGE_S) -> None:
        self.max_age_s = max_age_s
        self._opened: dict[str, float] = {}

    def open(self, now: float) -> str:
        # Logins that expired are forgotten here, so the table holds only live ones.
        for stale in [i for i, at in self._opened.items() if now - at > self.max_age_s]:
            del self._opened[stale]
        login_id = secrets.token_urlsafe(24)
        self._opened[login_id] = now
        return login_id

    def is_open(self, login_id: str, now: float) -> bool:
        at = self._opened.get(login_id)
        return at is not None and now - at <= self.max_age_s

    def close(self, login_id: str) -> None:
        self._opened.pop(login_id, None)

    def close_all(self) -> None:
        self._opened.clear()


class RedisAdminLogins:
    """The open logins as Redis keys, one per login, expiring with it; and the nonce that every
    process of the app shares (made by the first that starts).

    A plain (blocking) client: one small GET per admin request, on loopback or a LAN, is cheaper
    than making every caller of AdminAuth.admits async. Redis unreachable: nobody is admitted
    (logged), rather than anybody."""

    def __init__(self, url: str, *, prefix: str, max_age_s: float = ADMIN_SESSION_MAX_AGE_S):
        from redis import Redis

        self.max_age_s = max_age_s
        self._keys = f"{prefix}admin-login:"
        self._nonce_key = f"{prefix}admin-nonce"
        self._redis = Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)

    def shared_nonce(self) -> bytes:
        """The app's nonce: this process's proposal, unless another process's came first."""
        self._redis.set(self._nonce_key, secrets.token_bytes(32), nx=True)
        nonce = self._redis.get(self._nonce_key)
        assert isinstance(nonce, bytes), "the nonce was deleted as it was made"
        return nonce

    def open(self, now: float) -> str:
        login_id = secrets.token_urlsafe(24)
        # The key outlives the login by a second: is_open, not the expiry, decides.
        self._redis.set(self._keys + login_id, repr(now), ex=int(self.max_age_s) + 1)
        return login_id

    def is_open(self, login_id: str, now: float) -> bool:
        from redis import RedisError

        try:
            at = self._redis.get(self._keys + login_id)
        except RedisError as exc:
            log.warning("admin login not checked, Redis did not answer (%s): refused", exc)
            return False
        return isinstance(at, bytes) and now - float(at) <= self.max_age_s

    def close(self, login_id: str) -> None:
        self._redis.delete(self._keys + login_id)

    def close_all(self) -> None:
        for key in self._redis.scan_iter(match=f"{self._keys}*"):
            self._redis.delete(key)


@dataclass(frozen=True)
class AdminAuth:
    """The admin password of this app and what checks logins against it."""

    password: str = field(repr=False)
    generated: bool
    """True when no UNDERSTUDY_ADMIN_PASSWORD was set: the password is random, printed at start."""
    nonce: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    limiter: LoginLimiter = field(default_factory=LoginLimiter, repr=False, compare=False)
    logins: AdminLogins = field(default_factory=LocalAdminLogins, repr=False, compare=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> AdminAuth:
        password = settings.admin_password or secrets.token_urlsafe(12)
        generated = settings.admin_password is None
        if not settings.redis_url:
            return cls(password=password, generated=generated)
        from redis import RedisError

        logins = RedisAdminLogins(settings.redis_url, prefix=settings.redis_prefix)
        try:
            nonce = logins.shared_nonce()
        except RedisError as exc:
            # Start anyway, as the breakers do: this process's admin logins are its own.
            log.warning("Redis did not answer (%s): admin logins here open no other process", exc)
            return cls(password=password, generated=generated)
        return cls(password, generated, nonce=nonce, logins=logins)

    def token(self) -> str:
        return hmac.new(self.password.encode(), self.nonce, hashlib.sha256).hexdigest()

    def password_matches(self, candidate: str) -> bool:
        return hmac.compare_digest(candidate.encode(), self.password.encode())

    def with_password(self, password: str) -> AdminAuth:
        """This app's auth with a new password: every open login ends."""
        self.logins.close_all()
        return replace(self, password=password)

    def login(self, now: float) -> dict[str, str | int]:
        """What the session keeps under SESSION_KEY for an admin who logged in at ``now``."""
        return {"token": self.token(), "at": int(now), "id": self.logins.open(now)}

    def logout(self, login: object) -> None:
        """End ``login`` (the session's SESSION_KEY value) for every copy of the cookie."""
        if isinstance(login, dict) and isinstance(login_id := login.get("id"), str):
            self.logins.close(login_id)

    def admits(self, login: object, now: float) -> bool:
        """Whether ``login`` (the session's SESSION_KEY value, anything) is a current login."""
        if not isinstance(login, dict):
            return False
        token, at, login_id = login.get("token"), login.get("at"), login.get("id")
        if not isinstance(token, str) or not isinstance(at, int | float):
            return False
        if not isinstance(login_id, str) or now - at > ADMIN_SESSION_MAX_AGE_S:
            return False
        return hmac.compare_digest(token, self.token()) and self.logins.is_open(login_id, now)
