"""web.metrics_access: loopback only, or the bearer token from everyone once it is set."""

from __future__ import annotations

import pytest

from web.metrics_access import (
    BAD_HOST,
    NOT_LOOPBACK,
    TOKEN_MISSING,
    TOKEN_WRONG,
    MetricsAccess,
    bearer,
)
from web.settings import Settings
from web.sim.access import Refusal

TOKEN = "s3cret-scrape-token"
OPEN = MetricsAccess()
GUARDED = MetricsAccess(TOKEN)


@pytest.mark.parametrize("client", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
@pytest.mark.parametrize("host", ["127.0.0.1:8000", "localhost:8000", "[::1]:8000", "localhost"])
def test_loopback_clients_may_read_without_a_token(client: str, host: str) -> None:
    assert OPEN.refusal(client, host, None) is None


@pytest.mark.parametrize("client", ["203.0.113.7", "10.0.0.2", "2001:db8::1", None])
def test_other_clients_are_refused_without_a_token(client: str | None) -> None:
    assert OPEN.refusal(client, "127.0.0.1:8000", None) == Refusal(403, NOT_LOOPBACK)
    # A token sent to a server that has none configured opens nothing.
    assert OPEN.refusal(client, "127.0.0.1:8000", f"Bearer {TOKEN}") == Refusal(403, NOT_LOOPBACK)


def test_a_loopback_request_for_another_name_is_refused() -> None:
    """A reverse proxy on this machine passing on the public name (or a rebound DNS name)."""
    assert OPEN.refusal("127.0.0.1", "chat.example.org", None) == Refusal(
        403, BAD_HOST.format(host="chat.example.org")
    )
    assert OPEN.refusal("127.0.0.1", None, None) == Refusal(403, BAD_HOST.format(host=""))


@pytest.mark.parametrize("client", ["203.0.113.7", "127.0.0.1"])
def test_with_a_token_set_every_client_needs_it(client: str) -> None:
    assert GUARDED.refusal(client, "chat.example.org", f"Bearer {TOKEN}") is None
    assert GUARDED.refusal(client, "127.0.0.1:8000", f"bearer {TOKEN}") is None
    assert GUARDED.refusal(client, "127.0.0.1:8000", None) == Refusal(401, TOKEN_MISSING)
    assert GUARDED.refusal(client, "127.0.0.1:8000", "Basic dXNlcjpwdw==") == Refusal(
        401, TOKEN_MISSING
    )
    assert GUARDED.refusal(client, "127.0.0.1:8000", "Bearer nope") == Refusal(401, TOKEN_WRONG)
    assert GUARDED.refusal(client, "127.0.0.1:8000", f"Bearer {TOKEN}x") == Refusal(
        401, TOKEN_WRONG
    )


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("BEARER  abc ", "abc"),
        ("Bearer", None),
        ("Bearer   ", None),
        ("Token abc", None),
        ("", None),
        (None, None),
    ],
)
def test_the_bearer_token_of_an_authorization_header(header: str | None, token: str | None) -> None:
    assert bearer(header) == token


@pytest.mark.parametrize(("raw", "token"), [(" s3cret ", "s3cret"), ("  ", None), ("", None)])
def test_the_token_is_read_once_and_scrubbed_like_every_secret(raw: str, token: str | None) -> None:
    settings = Settings.from_env({"UNDERSTUDY_METRICS_TOKEN": raw})
    assert settings.metrics_token == token
    assert (token in settings.secrets()) is (token is not None)
