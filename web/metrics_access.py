"""Who may read /metrics.

Without ``UNDERSTUDY_METRICS_TOKEN``: loopback clients only (a Prometheus on this machine), with a
``Host`` that names a loopback address, as for the simulator's fault API (web.sim.access, whose
rules are reused here): a reverse proxy on this machine that passes on the public name is refused,
where it would otherwise make every visitor a loopback client.

With a token: every request must carry ``Authorization: Bearer <token>``, loopback ones included.
One rule for everyone is the safer one: behind a reverse proxy that does not pass on the client's
address (no ``--proxy-headers``), every visitor comes from loopback, and a loopback exception would
let them all in.

The client address is the one the app sees everywhere else: uvicorn's, taken from
X-Forwarded-For only with ``--proxy-headers`` and from the ``--forwarded-allow-ips`` proxies.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from web.sim.access import LOOPBACK_HOSTS, Refusal, SimAccess, is_loopback

NOT_LOOPBACK = (
    "/metrics answers only clients on this machine (loopback). To scrape it from elsewhere, set "
    "UNDERSTUDY_METRICS_TOKEN on the server and send Authorization: Bearer <token>."
)
BAD_HOST = (
    "/metrics answers only requests for " + LOOPBACK_HOSTS + " (the Host header was {host!r}). "
    "Scrape it by a loopback address, or set UNDERSTUDY_METRICS_TOKEN to scrape it by name."
)
TOKEN_MISSING = (
    "/metrics needs the metrics token: send Authorization: Bearer <UNDERSTUDY_METRICS_TOKEN>."
)
TOKEN_WRONG = "The metrics token is wrong: send the value of UNDERSTUDY_METRICS_TOKEN as set."

_LOOPBACK_ONLY = SimAccess()
"""The fault API's rules unexposed: loopback clients, loopback Host names."""


@dataclass(frozen=True)
class MetricsAccess:
    token: str | None = None
    """UNDERSTUDY_METRICS_TOKEN: when set, it is required of every client."""

    def refusal(
        self, client: str | None, host_header: str | None, authorization: str | None
    ) -> Refusal | None:
        """Why this request is refused (401 or 403, with words), or None when it may read."""
        if self.token is not None:
            given = bearer(authorization)
            if given is None:
                return Refusal(401, TOKEN_MISSING)
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                return Refusal(401, TOKEN_WRONG)
            return None
        if not is_loopback(client):
            return Refusal(403, NOT_LOOPBACK)
        if not _LOOPBACK_ONLY.host_allowed(host_header or ""):
            return Refusal(403, BAD_HOST.format(host=host_header or ""))
        return None


def bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (the scheme in any case)."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token
