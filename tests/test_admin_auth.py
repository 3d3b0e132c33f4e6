"""The admin's login without HTTP: the token, its age, and the failed-login limit."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from web.admin_auth import ADMIN_SESSION_MAX_AGE_S, AdminAuth, LocalAdminLogins, LoginLimiter
from web.settings import Settings


def test_the_window_slides_per_client() -> None:
    limiter = LoginLimiter(limit=2, window_s=60.0)
    limiter.failed("a", 0.0)
    limiter.failed("a", 10.0)
    assert limiter.retry_after("a", 20.0) == pytest.approx(40.0)
    assert limiter.retry_after("b", 20.0) is None
    assert limiter.retry_after("a", 60.5) is None  # the first failure left the window
    limiter.succeeded("a")
    assert limiter.retry_after("a", 61.0) is None


def test_many_clients_do_not_grow_it_without_bound() -> None:
    limiter = LoginLimiter(limit=2, window_s=60.0)
    limiter.max_clients = 100
    for i in range(100):
        limiter.failed(f"old-{i}", 0.0)
    limiter.failed("new", 120.0)
    assert limiter.retry_after("new", 120.0) is None
    assert len(limiter._failures) == 1


def test_a_login_lasts_twelve_hours() -> None:
    auth = AdminAuth("secret", generated=False)
    login = auth.login(1000.0)
    assert auth.admits(login, 1000.0)
    assert auth.admits(login, 1000.0 + ADMIN_SESSION_MAX_AGE_S)
    assert not auth.admits(login, 1000.0 + ADMIN_SESSION_MAX_AGE_S + 1)


def test_a_login_needs_this_password_and_this_process() -> None:
    auth = AdminAuth("secret", generated=False)
    login = auth.login(0.0)
    assert "secret" not in repr(login) and "secret" not in repr(auth)
    assert not replace(auth, password="rotated").admits(login, 0.0)
    assert not AdminAuth("secret", generated=False).admits(login, 0.0)  # a restart: a new nonce
    assert replace(auth, limiter=LoginLimiter()).admits(login, 0.0)


def test_anything_else_in_the_session_is_no_login() -> None:
    auth = AdminAuth("secret", generated=False)
    token = auth.token()
    for value in (
        None,
        token,
        {"token": token},
        {"token": 1, "at": 0},
        {"token": token, "at": "0"},
    ):
        assert not auth.admits(value, 0.0)


def test_the_password_is_the_configured_one_or_random(tmp_path: Path) -> None:
    chosen = AdminAuth.from_settings(
        Settings.from_env({"UNDERSTUDY_DATA_DIR": str(tmp_path), "UNDERSTUDY_ADMIN_PASSWORD": "pw"})
    )
    assert (chosen.password, chosen.generated) == ("pw", False)
    assert chosen.password_matches("pw") and not chosen.password_matches("pw ")
    unset = Settings.from_env({"UNDERSTUDY_DATA_DIR": str(tmp_path)})
    first, second = AdminAuth.from_settings(unset), AdminAuth.from_settings(unset)
    assert first.generated and len(first.password) >= 16
    assert first.password != second.password and first.nonce != second.nonce


def test_logout_closes_the_login_on_the_server() -> None:
    auth = AdminAuth("secret", generated=False)
    login, other = auth.login(0.0), auth.login(0.0)
    auth.logout(dict(login))  # a copy of the cookie's value: the same login id
    assert not auth.admits(login, 1.0)
    assert auth.admits(other, 1.0)  # another browser's login is untouched
    auth.logout(None)  # a session that was no login: nothing to end
    assert not auth.with_password("secret").admits(other, 1.0)


def test_expired_logins_are_forgotten() -> None:
    logins = LocalAdminLogins(max_age_s=10.0)
    old = logins.open(0.0)
    assert logins.is_open(old, 10.0) and not logins.is_open(old, 10.5)
    logins.open(11.0)
    assert len(logins._opened) == 1
