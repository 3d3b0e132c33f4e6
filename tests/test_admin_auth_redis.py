"""web.admin_auth with UNDERSTUDY_REDIS_URL: the logins and the nonce are the app's, not a
process's (two AdminAuth made from the same settings stand for two processes), on the local Redis
under a prefix of this test's own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from web.admin_auth import ADMIN_SESSION_MAX_AGE_S, AdminAuth, RedisAdminLogins
from web.settings import Settings

from support.cluster import REDIS_URL, redis_or_skip


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    redis_or_skip()
    prefix = f"understudy-test-{uuid.uuid4().hex[:12]}:"
    yield Settings.from_env(
        {
            "UNDERSTUDY_DATA_DIR": str(tmp_path),
            "UNDERSTUDY_ADMIN_PASSWORD": "secret",
            "UNDERSTUDY_REDIS_URL": REDIS_URL,
            "UNDERSTUDY_REDIS_PREFIX": prefix,
        }
    )
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=f"{prefix}*"):
        client.delete(key)
    client.close()


def test_a_login_made_through_one_process_opens_the_others(settings: Settings) -> None:
    first, second = AdminAuth.from_settings(settings), AdminAuth.from_settings(settings)
    assert isinstance(first.logins, RedisAdminLogins)
    assert first.nonce == second.nonce  # the first process's, taken by the second
    login = first.login(1000.0)
    assert second.admits(login, 1000.0)
    assert second.admits(login, 1000.0 + ADMIN_SESSION_MAX_AGE_S)
    assert not second.admits(login, 1000.0 + ADMIN_SESSION_MAX_AGE_S + 1)
    restarted = AdminAuth.from_settings(settings)
    assert restarted.admits(login, 1000.0)  # one process restarting logs nobody out


def test_a_logout_or_a_new_password_on_one_process_closes_the_login_on_all(
    settings: Settings,
) -> None:
    first, second = AdminAuth.from_settings(settings), AdminAuth.from_settings(settings)
    login, other = first.login(0.0), second.login(0.0)
    second.logout(dict(login))
    assert not first.admits(login, 1.0)
    assert first.admits(other, 1.0)
    first.with_password("secret")  # the same password again: the logins end all the same
    assert not second.admits(other, 1.0)


def test_a_login_of_another_app_on_the_same_redis_opens_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    elsewhere = Settings.from_env(
        {
            "UNDERSTUDY_DATA_DIR": str(tmp_path),
            "UNDERSTUDY_ADMIN_PASSWORD": "secret",
            "UNDERSTUDY_REDIS_URL": REDIS_URL,
            "UNDERSTUDY_REDIS_PREFIX": f"{settings.redis_prefix}other:",
        }
    )
    login = AdminAuth.from_settings(elsewhere).login(0.0)
    assert not AdminAuth.from_settings(settings).admits(login, 0.0)


def test_without_redis_reachable_the_process_starts_with_logins_of_its_own(
    tmp_path: Path,
) -> None:
    unreachable = Settings.from_env(
        {
            "UNDERSTUDY_DATA_DIR": str(tmp_path),
            "UNDERSTUDY_ADMIN_PASSWORD": "secret",
            "UNDERSTUDY_REDIS_URL": "redis://127.0.0.1:9/0",  # nothing listens there
        }
    )
    auth = AdminAuth.from_settings(unreachable)
    assert auth.admits(auth.login(0.0), 0.0)
    assert not AdminAuth.from_settings(unreachable).admits(auth.login(0.0), 0.0)
