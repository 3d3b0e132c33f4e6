"""Who may see /admin: login, logout, the rate limit and AdminDep, in the real app, in process."""

from __future__ import annotations

from dataclasses import replace

import httpx
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

from web.admin_auth import LOGIN_LIMIT
from web.routes.admin_login import AdminDep
from web.state import AppState

from .conftest import PASSWORD, csrf_of, log_in
from support.database import BACKENDS

pytestmark = BACKENDS


async def test_every_admin_page_needs_a_login(client: httpx.AsyncClient) -> None:
    for path in ("/admin", "/admin/degraded.csv", "/admin/turns/abc"):
        response = await client.get(path)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/admin/login?next=%2Fadmin")
    page = await client.get("/admin/login")
    assert page.status_code == 200 and 'type="password"' in page.text
    assert page.headers["cache-control"] == "no-store"


async def test_login_needs_the_csrf_token(client: httpx.AsyncClient) -> None:
    await client.get("/admin/login")
    response = await client.post("/admin/login", data={"password": PASSWORD})
    assert response.status_code == 403
    assert (await client.get("/admin")).status_code == 303


async def test_wrong_password_is_refused_then_rate_limited(client: httpx.AsyncClient) -> None:
    for _ in range(LOGIN_LIMIT):
        response = await log_in(client, "guess")
        assert response.status_code == 401 and "Wrong password." in response.text
    response = await log_in(client)  # even the right password waits now
    assert response.status_code == 429
    assert "Too many failed logins" in response.text
    assert 0 < int(response.headers["retry-after"]) <= 60
    assert (await client.get("/admin")).status_code == 303


async def test_login_logout_and_a_new_password_ends_the_session(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    response = await log_in(client)
    assert (response.status_code, response.headers["location"]) == (303, "/admin")
    assert (await client.get("/admin")).status_code == 200
    assert PASSWORD not in str(client.cookies.get("understudy_session"))

    page = await client.get("/admin")
    response = await client.post("/admin/logout", data={"csrf_token": csrf_of(page.text)})
    assert (response.status_code, response.headers["location"]) == (303, "/admin/login")
    assert (await client.get("/admin")).status_code == 303

    await log_in(client)
    state = AppState.of(app)
    # The same process (same nonce) with another password: only the password changed.
    replace(state, admin=replace(state.admin, password="rotated")).attach(app)
    assert (await client.get("/admin")).status_code == 303


async def test_login_returns_to_the_page_asked_for_but_never_elsewhere(
    client: httpx.AsyncClient,
) -> None:
    response = await log_in(client, next="/admin/turns/abc")
    assert response.headers["location"] == "/admin/turns/abc"
    await client.post(
        "/admin/logout", data={"csrf_token": csrf_of((await client.get("/admin")).text)}
    )
    response = await log_in(client, next="https://elsewhere.example/")
    assert response.headers["location"] == "/admin"


async def test_admin_dep_sends_anyone_else_to_the_login_and_back(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    served: list[str] = []

    @app.get("/admin/probe")
    async def probe(_admin: AdminDep) -> PlainTextResponse:
        served.append("probe")
        return PlainTextResponse("for admins")

    response = await client.get("/admin/probe?tier=haiku&page=2")
    assert response.status_code == 303
    assert (
        response.headers["location"]
        == "/admin/login?next=%2Fadmin%2Fprobe%3Ftier%3Dhaiku%26page%3D2"
    )
    assert served == []  # the handler never ran

    response = await log_in(client, next="/admin/probe?tier=haiku&page=2")
    assert response.headers["location"] == "/admin/probe?tier=haiku&page=2"
    response = await client.get(response.headers["location"])
    assert (response.status_code, response.text, served) == (200, "for admins", ["probe"])


async def test_logout_ends_the_login_for_a_copy_of_the_cookie_too(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await log_in(client)
    copy = dict(client.cookies)  # taken before logout, e.g. by someone at the same browser
    page = await client.get("/admin")
    await client.post("/admin/logout", data={"csrf_token": csrf_of(page.text)})

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", cookies=copy
    ) as thief:
        response = await thief.get("/admin")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/admin/login")


async def test_a_password_change_ends_every_login_even_to_the_same_password(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await log_in(client)
    assert (await client.get("/admin")).status_code == 200
    state = AppState.of(app)
    replace(state, admin=state.admin.with_password(PASSWORD)).attach(app)
    assert (await client.get("/admin")).status_code == 303


def _chat_session(app: FastAPI, cookies: dict[str, str] | None = None) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver", cookies=cookies)


async def _new_chat(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post(
        "/c", data={"content": "hello"}, headers={"X-CSRF-Token": token, "HX-Request": "true"}
    )


async def test_login_and_logout_rotate_the_session_and_keep_its_conversations(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    async with _chat_session(app) as attacker:
        # The attacker's cookie, planted in the victim's browser (cookies ignore ports).
        planted_token = csrf_of((await attacker.get("/")).text)
        client.cookies.update(attacker.cookies)
        before = await _new_chat(client, planted_token)
        mine = before.headers["HX-Redirect"]
        assert mine in (await attacker.get("/")).text  # unavoidable before the rotation

        await log_in(client)
        page = await client.get("/")
        assert mine in page.text  # the conversation moved with the session
        token = csrf_of(page.text)
        assert token != planted_token
        assert (await _new_chat(client, planted_token)).status_code == 403
        after = await _new_chat(client, token)
        assert after.status_code == 200
        later = after.headers["HX-Redirect"]
        seen = await attacker.get("/")
        assert mine not in seen.text and later not in seen.text
        assert (await attacker.get(later)).status_code == 404

        await client.post("/admin/logout", data={"csrf_token": token})
        page = await client.get("/")
        assert mine in page.text and later in page.text
        assert csrf_of(page.text) != token
        assert (await _new_chat(client, token)).status_code == 403
