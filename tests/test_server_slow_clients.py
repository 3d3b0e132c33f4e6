"""`understudy serve` against slow clients and behind a proxy, on loopback (web.server).

Each test starts its own real server: these settings are per process.
"""

from __future__ import annotations

import re
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import LiveApp, start_live_app

from web.admin_auth import LOGIN_LIMIT

HEADER_TIMEOUT_S = 0.5
BOUND_S = 10.0
"""No test waits longer than this for the server to act; none waits for a fixed time."""


@pytest.fixture(scope="module")
def slow_header_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    app = start_live_app(
        tmp_path_factory.mktemp("slow"), env={"UNDERSTUDY_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S)}
    )
    yield app
    app.stop()


def _port(app: LiveApp) -> int:
    return int(app.url.rsplit(":", 1)[1])


def _closed_within(sock: socket.socket, bound_s: float) -> float:
    """Seconds until the server closes ``sock`` (it may send nothing first); fails past bound_s."""
    started = time.monotonic()
    sock.settimeout(bound_s)
    received = b""
    try:
        while chunk := sock.recv(4096):
            received += chunk
    except TimeoutError:
        pytest.fail(f"the server kept a slow connection open for {bound_s} s")
    except ConnectionResetError:
        pass
    assert b"200 OK" not in received
    return time.monotonic() - started


def test_half_a_request_line_is_dropped_after_the_header_timeout(
    slow_header_server: LiveApp,
) -> None:
    with socket.create_connection(("127.0.0.1", _port(slow_header_server)), timeout=5) as sock:
        sock.sendall(b"GET /healthz HT")
        _closed_within(sock, BOUND_S)


def test_trickled_headers_do_not_restart_the_timer(slow_header_server: LiveApp) -> None:
    with socket.create_connection(("127.0.0.1", _port(slow_header_server)), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        # A header line every HEADER_TIMEOUT_S / 5 (the pace, not a wait): the head never ends.
        while time.monotonic() - started < BOUND_S:
            readable, _, _ = select.select([sock], [], [], HEADER_TIMEOUT_S / 5)
            if readable and not sock.recv(4096):
                break  # closed by the server
            try:
                sock.sendall(b"X-Slow: 1\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
        else:
            pytest.fail(f"the server kept a trickling connection open for {BOUND_S} s")


def test_a_connection_that_sends_nothing_is_dropped_too(slow_header_server: LiveApp) -> None:
    with socket.create_connection(("127.0.0.1", _port(slow_header_server)), timeout=5) as sock:
        _closed_within(sock, BOUND_S)


def test_a_whole_request_is_still_served(slow_header_server: LiveApp) -> None:
    with socket.create_connection(("127.0.0.1", _port(slow_header_server)), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        sock.settimeout(BOUND_S)
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200 OK") and reply.endswith(b"ok")


@pytest.fixture(scope="module")
def proxied_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveApp, Path]]:
    """`understudy -v serve --proxy-headers`, with a generated admin password; stderr apart."""
    base = tmp_path_factory.mktemp("proxied")
    stderr_path = base / "stderr.log"
    app = start_live_app(
        base,
        cli_args=["-v"],
        serve_args=["--proxy-headers"],
        env={"UNDERSTUDY_ADMIN_PASSWORD": None},
        stderr_path=stderr_path,
    )
    yield app, stderr_path
    app.stop()


def _failed_logins(url: str, forwarded_for: str, count: int) -> list[int]:
    with httpx.Client(base_url=url, headers={"X-Forwarded-For": forwarded_for}) as client:
        page = client.get("/admin/login").text
        match = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert match
        form = {"csrf_token": match.group(1), "password": "wrong", "next": "/admin"}
        return [client.post("/admin/login", data=form).status_code for _ in range(count)]


def test_behind_a_trusted_proxy_the_lockout_is_per_forwarded_client(
    proxied_server: tuple[LiveApp, Path],
) -> None:
    app, _ = proxied_server
    assert _failed_logins(app.url, "203.0.113.7", LOGIN_LIMIT + 1) == [401] * LOGIN_LIMIT + [429]
    # Another client behind the same proxy is not locked out by the first one's failures.
    assert _failed_logins(app.url, "203.0.113.8", 1) == [401]


def test_without_proxy_headers_a_forwarded_address_is_ignored(
    slow_header_server: LiveApp,
) -> None:
    # The default: X-Forwarded-For is anyone's to send, so it must not pick the lockout's key.
    fails = _failed_logins(slow_header_server.url, "198.51.100.1", LOGIN_LIMIT)
    assert fails == [401] * LOGIN_LIMIT
    assert _failed_logins(slow_header_server.url, "198.51.100.2", 1) == [429]


def test_the_generated_admin_password_is_shown_once_and_never_logged(
    proxied_server: tuple[LiveApp, Path],
) -> None:
    app, stderr_path = proxied_server
    _failed_logins(app.url, "203.0.113.9", 1)
    shown = re.findall(r"Admin page /admin password for this run .*: (\S+)\n", app.log())
    assert len(shown) == 1
    password = shown[0]
    logged = stderr_path.read_text()
    assert "DEBUG" in logged  # -v: the most verbose logging there is
    assert password not in logged
    assert app.log().count(password) == 1
