"""Who may use /_sim in the app: loopback clients with a loopback Host, unless exposed.

Every request here is in process (httpx.ASGITransport with a chosen client address): no packet
goes to any address but loopback.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI

from web.app import create_app
from web.server import announce
from web.settings import Settings
from web.sim.access import (
    BAD_HOST,
    LOOPBACK_HOSTS,
    NOT_LOOPBACK,
    SimAccess,
    host_name,
    is_loopback,
    startup_notice,
)

OUTSIDER = ("10.0.0.5", 40000)
LOCAL = ("127.0.0.1", 40000)


def _settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env({"UNDERSTUDY_DATA_DIR": str(tmp_path / "data"), **env})


def _client(app: FastAPI, client: tuple[str, int], host: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=client)
    return httpx.AsyncClient(transport=transport, base_url=f"http://{host}")


@pytest.fixture
def demo_app(tmp_path: Path) -> FastAPI:
    return create_app(_settings(tmp_path))


@pytest.mark.parametrize("host", ["127.0.0.1:8000", "localhost", "LOCALHOST:80", "[::1]:8000"])
async def test_a_loopback_client_with_a_loopback_host_gets_the_fault_api(
    demo_app: FastAPI, host: str
) -> None:
    async with _client(demo_app, LOCAL, host) as http:
        assert (await http.get("/_sim/faults")).json() == []
        response = await http.post("/_sim/faults", json={"model": "*", "kind": "reset"})
        assert response.status_code == 201


@pytest.mark.parametrize("client", [OUTSIDER, ("192.168.1.20", 5), ("2001:db8::1", 5)])
async def test_a_client_off_this_machine_is_refused_403(
    demo_app: FastAPI, client: tuple[str, int]
) -> None:
    async with _client(demo_app, client, "127.0.0.1:8000") as http:
        for response in (
            await http.get("/_sim/faults"),
            await http.post("/_sim/models", json={"model": "*", "reply_tokens": 1000000}),
        ):
            assert response.status_code == 403
            assert response.json() == {"error": NOT_LOOPBACK}
    async with _client(demo_app, LOCAL, "127.0.0.1:8000") as http:
        assert (await http.get("/_sim/models")).json()["default"]["reply_tokens"] != 1000000


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:8000", "127.0.0.1.evil.example", "localhost:x", ""]
)
async def test_a_host_that_is_not_loopback_is_refused_421(demo_app: FastAPI, host: str) -> None:
    """DNS rebinding: the browser is on loopback, but the Host is the attacker's name."""
    async with _client(demo_app, LOCAL, "127.0.0.1") as http:
        response = await http.get("/_sim/faults", headers={"host": host})
    assert response.status_code == 421
    assert "does not name this server" in response.json()["error"]


@pytest.fixture
async def exposed(tmp_path: Path) -> AsyncIterator[FastAPI]:
    yield create_app(_settings(tmp_path, UNDERSTUDY_EXPOSE_SIM="1"), served_host="chat.lan")


@pytest.mark.parametrize("host", ["chat.lan:8000", "10.0.0.1:8000", "[fd00::1]", "localhost"])
async def test_exposed_any_client_may_use_it_with_an_address_or_the_served_host(
    exposed: FastAPI, host: str
) -> None:
    async with _client(exposed, OUTSIDER, host) as http:
        assert (await http.get("/_sim/faults")).status_code == 200


async def test_exposed_a_foreign_name_is_still_refused(exposed: FastAPI) -> None:
    async with _client(exposed, OUTSIDER, "evil.example") as http:
        response = await http.get("/_sim/faults")
    assert response.status_code == 421


def test_host_names_and_loopback_addresses() -> None:
    assert host_name("[::1]:8000") == "::1" and host_name("LocalHost:80") == "localhost"
    assert host_name("[::1") is None and host_name("a:b") is None and host_name("") is None
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.8.9.1", "::1", "::ffff:127.0.0.1"))
    assert not any(is_loopback(h) for h in ("10.0.0.5", "0.0.0.0", "testclient", None, ""))
    refused = SimAccess().refusal("127.0.0.1", "evil.example")
    assert refused is not None and refused.status == 421
    assert refused.message == BAD_HOST.format(host="evil.example", allowed=LOOPBACK_HOSTS)


def _fake_server(host: str, port: int = 8000) -> SimpleNamespace:
    sock = SimpleNamespace(getsockname=lambda: (host, port))
    return SimpleNamespace(servers=[SimpleNamespace(sockets=[sock])])


@pytest.mark.parametrize(
    ("bound", "env", "expected"),
    [
        ("0.0.0.0", {}, startup_notice("0.0.0.0", expose=False)),
        ("0.0.0.0", {"UNDERSTUDY_EXPOSE_SIM": "1"}, startup_notice("0.0.0.0", expose=True)),
        ("127.0.0.1", {}, None),
    ],
)
async def test_start_up_says_who_gets_the_fault_api_on_a_non_loopback_address(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    bound: str,
    env: dict[str, str],
    expected: str | None,
) -> None:
    app = create_app(_settings(tmp_path, **env))
    async with app.router.lifespan_context(app):
        announce(_fake_server(bound), app)  # type: ignore[arg-type]
    out = capsys.readouterr().out
    if expected is None:
        assert "loopback" not in out and "UNDERSTUDY_EXPOSE_SIM" not in out
    else:
        assert expected in out and "UNDERSTUDY_EXPOSE_SIM=1" in expected
