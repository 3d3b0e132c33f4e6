"""Session cookie, CSRF and security headers, over real HTTP against the live server."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from web.security import CONTENT_SECURITY_POLICY, secret_key
from web.settings import Settings

from support.chat import ChatClient

if TYPE_CHECKING:
    from tests.conftest import LiveApp


def test_session_cookie_is_signed_httponly_and_samesite(live_app: LiveApp) -> None:
    reply = httpx.get(f"{live_app.url}/")
    cookie = reply.headers["set-cookie"].lower()
    assert cookie.startswith("understudy_session=")
    assert "httponly" in cookie
    assert "samesite=lax" in cookie


def test_every_response_carries_the_csp(live_app: LiveApp) -> None:
    for path in ("/", "/static/app.css", "/c/unknown", "/no-such-page"):
        reply = httpx.get(f"{live_app.url}{path}")
        assert reply.headers["content-security-policy"] == CONTENT_SECURITY_POLICY, path
        assert reply.headers["x-content-type-options"] == "nosniff"
    assert "script-src" not in CONTENT_SECURITY_POLICY  # default-src 'self': no inline scripts
    for directive in ("object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'"):
        assert directive in CONTENT_SECURITY_POLICY


def test_pages_contain_no_inline_script(client: ChatClient) -> None:
    conversation = client.new_conversation("hello")
    html = client.page(conversation).text
    assert "<script>" not in html
    assert html.count("<script") == html.count("<script src=")
    assert " onclick=" not in html and " onload=" not in html


def test_post_without_csrf_token_is_refused_and_stores_nothing(client: ChatClient) -> None:
    reply = client.http.post("/c", data={"content": "no token"})
    assert reply.status_code == 403
    assert "security token" in reply.text
    assert "no token" not in client.http.get("/").text


def test_post_with_another_sessions_token_is_refused(
    client: ChatClient, stranger: ChatClient
) -> None:
    reply = client.http.post(
        "/c", data={"content": "x"}, headers={"X-CSRF-Token": stranger.csrf, "HX-Request": "true"}
    )
    assert reply.status_code == 403
    assert 'data-testid="flash"' in reply.text  # htmx gets an inline fragment


def test_cross_site_origin_is_refused_even_with_the_token(client: ChatClient) -> None:
    reply = client.http.post(
        "/c",
        data={"content": "x", "csrf_token": client.csrf},
        headers={"Origin": "https://evil.example"},
    )
    assert reply.status_code == 403


def test_plain_form_post_with_the_token_field_works(client: ChatClient) -> None:
    reply = client.http.post("/c", data={"content": "form post", "csrf_token": client.csrf})
    assert reply.status_code == 303
    assert reply.headers["location"].startswith("/c/")


def test_every_state_changing_route_needs_the_token(client: ChatClient) -> None:
    conversation = client.new_conversation("hello")
    turn = client.last_turn(conversation)
    client.finish(conversation, turn)
    for path in (
        f"/c/{conversation}/messages",
        f"/c/{conversation}/turns/{turn}/stop",
        f"/c/{conversation}/turns/{turn}/regenerate",
        f"/c/{conversation}/rename",
        f"/c/{conversation}/delete",
        f"/c/{conversation}/restore",
        f"/c/{conversation}/purge",
        "/demo/outage",
        "/demo/outage/reset",
    ):
        assert client.http.post(path, data={"content": "x", "title": "y"}).status_code == 403, path
    assert client.page(conversation).status_code == 200  # not deleted


def test_the_generated_secret_key_is_private_and_reused(tmp_path: Path) -> None:
    settings = Settings.from_env({"UNDERSTUDY_DATA_DIR": str(tmp_path)})
    first = secret_key(settings)
    mode = stat.S_IMODE((tmp_path / "secret_key").stat().st_mode)
    assert mode == 0o600
    assert secret_key(settings) == first
    configured = Settings.from_env(
        {"UNDERSTUDY_DATA_DIR": str(tmp_path), "UNDERSTUDY_SECRET_KEY": "k" * 40}
    )
    assert secret_key(configured) == "k" * 40
