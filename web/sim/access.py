"""Who may use the simulator's fault API (/_sim) and the demo's outage panel inside the app.

Both take the app's models down, so in demo mode on a non-loopback address anyone on the
network could stall every visitor's chat. By default they answer only loopback clients (others
get 403), and only requests whose ``Host`` names a loopback address (others get 421): a page on
another site whose name the attacker has pointed at 127.0.0.1 (DNS rebinding) is a loopback
client, but its requests still carry the attacker's name.

``UNDERSTUDY_EXPOSE_SIM=1`` opens them to every client. The ``Host`` must then be a loopback
name, an IP address (an address cannot be rebound) or the name the app was told to serve
(``understudy serve --host``).
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

LOOPBACK_NAMES = frozenset({"localhost"})

NOT_LOOPBACK = (
    "The simulator's fault API and the outage panel answer only clients on this machine "
    "(loopback). Set UNDERSTUDY_EXPOSE_SIM=1 on the server to let other clients use them."
)
BAD_HOST = (
    "The Host header {host!r} does not name this server: the simulator's fault API and the "
    "outage panel answer only requests for {allowed}."
)
LOOPBACK_HOSTS = "localhost, 127.0.0.1 or [::1]"
EXPOSED_HOSTS = "localhost, 127.0.0.1, [::1], an IP address, or the host it was started on"


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_loopback(host: str | None) -> bool:
    """A loopback address (127.0.0.0/8, ::1, ::ffff:127.x) or the name localhost."""
    if not host:
        return False
    if host.lower() in LOOPBACK_NAMES:
        return True
    address = _address(host)
    return address is not None and address.is_loopback


def host_name(header: str) -> str | None:
    """The name in a Host header ("name", "name:port", "[v6]:port"), lowercased; None if garbled."""
    header = header.strip().lower()
    if header.startswith("["):
        end = header.find("]")
        name, rest = header[1:end], header[end + 1 :]
        if end < 0 or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
        return name or None
    name, colon, port = header.partition(":")
    if colon and not port.isdigit():
        return None
    return name or None


@dataclass(frozen=True)
class SimAccess:
    expose: bool = False
    """UNDERSTUDY_EXPOSE_SIM: every client may use them, not only loopback ones."""
    served_host: str | None = None
    """The host `understudy serve` binds (``--host``), an accepted Host when exposed."""

    def refusal(self, client: str | None, host_header: str | None) -> Refusal | None:
        """Why a request from `client` (its address) with this Host is refused; None: it is not."""
        if not self.expose and not is_loopback(client):
            return Refusal(403, NOT_LOOPBACK)
        if not self.host_allowed(host_header or ""):
            allowed = EXPOSED_HOSTS if self.expose else LOOPBACK_HOSTS
            return Refusal(421, BAD_HOST.format(host=host_header or "", allowed=allowed))
        return None

    def host_allowed(self, header: str) -> bool:
        name = host_name(header)
        if name is None:
            return False
        if is_loopback(name):
            return True
        if not self.expose:
            return False
        served = (self.served_host or "").strip("[]").lower()
        return _address(name) is not None or (bool(served) and name == served)

    def guard(self, app: ASGIApp) -> ASGIApp:
        """`app` (the mounted control API) behind this policy; refusals in its JSON style."""

        async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            client = scope.get("client")
            host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), None)
            refused = self.refusal(client[0] if client else None, host)
            if refused is None:
                await app(scope, receive, send)
                return
            body = json.dumps({"error": refused.message}).encode()
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
            ]
            await send(
                {"type": "http.response.start", "status": refused.status, "headers": headers}
            )
            await send({"type": "http.response.body", "body": body})

        return guarded


def startup_notice(bound_host: str, expose: bool) -> str | None:
    """What `understudy serve` says about the fault API when it binds `bound_host` in demo mode."""
    if is_loopback(bound_host):
        return None
    if expose:
        return (
            "UNDERSTUDY_EXPOSE_SIM=1: the simulator's fault API (/_sim) and the outage panel "
            "answer every client that can reach this address."
        )
    return (
        "The simulator's fault API (/_sim) and the outage panel answer only clients on this "
        "machine (loopback); set UNDERSTUDY_EXPOSE_SIM=1 to let other clients use them."
    )
