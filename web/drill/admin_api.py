"""The server's drill API (web.routes.drills_api), as an admin's browser session reaches it.

Log in like the login form does (the CSRF token from ``GET /admin/login``, then ``POST
/admin/login`` with the password: a 303 and a new session), read the new session's CSRF token
from a page, and send it in ``X-CSRF-Token`` with every POST. Refusals carry the server's own
words (``{"error": ...}``), which :class:`DrillUnavailable` passes on: they say what to fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from web.drill_faults import DrillFault

from .page import Node, csrf_of, parse


class DrillUnavailable(Exception):
    """The drill cannot run (or be ended): the target, the login or the API refused. The
    message says which and why."""


@dataclass(frozen=True)
class LineUp:
    """What the target runs, as its admin page says (web.lineup): the tiers in chain order,
    whether they answer from the simulator, and whether a turn no tier can answer is queued."""

    tiers: tuple[str, ...]
    simulated: bool
    queues: bool


@dataclass(frozen=True)
class Started:
    id: str
    header: str
    """The request header that makes a chat turn one of the drill's."""
    expires_at: str


class AdminAPI:
    def __init__(
        self, base_url: str, password: str, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.base_url = base_url
        self._password = password
        self._http = httpx.AsyncClient(base_url=base_url, timeout=30.0, transport=transport)
        self._csrf: str | None = None

    async def aclose(self) -> None:
        await self._http.aclose()

    async def login(self) -> None:
        try:
            form = await self._http.get("/admin/login")
            token = csrf_of(form.text)
            if token is None:
                raise DrillUnavailable(
                    f"{self.base_url}/admin/login has no login form (HTTP {form.status_code}): "
                    "is --target an Understudy?"
                )
            reply = await self._http.post(
                "/admin/login", data={"csrf_token": token, "password": self._password}
            )
            if reply.status_code == 401:
                raise DrillUnavailable(
                    "the admin login was refused: UNDERSTUDY_ADMIN_PASSWORD is not the "
                    "target's admin password"
                )
            if reply.status_code != 303:
                raise DrillUnavailable(f"the admin login answered HTTP {reply.status_code}")
            page = await self._http.get("/")
        except httpx.HTTPError as exc:
            raise DrillUnavailable(f"cannot reach {self.base_url}: {exc}") from None
        self._csrf = csrf_of(page.text)
        if self._csrf is None:
            raise DrillUnavailable(f"{self.base_url}/ has no CSRF token after the login")

    async def start(
        self, scenario: str, faults: Sequence[DrillFault], *, instance_wide: bool, ttl_s: float
    ) -> Started:
        body = {
            "scenario": scenario,
            "faults": [f.to_json() for f in faults],
            "instance_wide": instance_wide,
            "ttl_s": ttl_s,
        }
        data = await self._post("", body, expect=201)
        return Started(str(data["id"]), str(data["header"]), str(data["expires_at"]))

    async def end(self, drill_id: str, verdict: str, report: dict[str, Any], markdown: str) -> bool:
        """True when this call ended it (False: it had ended already, or expired)."""
        body = {"verdict": verdict, "report": report, "markdown": markdown}
        data = await self._post(f"/{drill_id}/end", body, expect=200)
        return bool(data.get("ended"))

    async def complete(
        self, drill_id: str, verdict: str, report: dict[str, Any], markdown: str
    ) -> bool:
        """The final report, with the recovery check, over the one sent with the end call."""
        body = {"verdict": verdict, "report": report, "markdown": markdown}
        data = await self._post(f"/{drill_id}/report", body, expect=200)
        return bool(data.get("updated"))

    async def lineup(self) -> LineUp:
        try:
            page = await self._http.get("/admin")
        except httpx.HTTPError as exc:
            raise DrillUnavailable(f"cannot reach {self.base_url}: {exc}") from None
        section = parse(page.text).find(data_testid="chain-lineup")
        if page.status_code != 200 or section is None:
            raise DrillUnavailable(
                f"{self.base_url}/admin shows no chain line-up (HTTP {page.status_code})"
            )
        running = next((c for c in section.children if isinstance(c, Node) and c.tag == "ol"), None)
        tiers = tuple(
            c.attrs["data-tier"]
            for c in (running.children if running is not None else [])
            if isinstance(c, Node) and "data-tier" in c.attrs
        )
        deferral = section.find(data_testid="lineup-deferral")
        heading = section.find(id="lineup-title")
        return LineUp(
            tiers=tiers,
            simulated=heading is not None and "simulated upstream" in heading.text(),
            queues=deferral is not None and "queued for" in deferral.text(),
        )

    async def get(self, drill_id: str) -> dict[str, Any]:
        try:
            reply = await self._http.get(f"/admin/api/drills/{drill_id}")
        except httpx.HTTPError as exc:
            raise DrillUnavailable(f"cannot reach {self.base_url}: {exc}") from None
        return _answer(reply, 200)

    async def _post(self, path: str, body: dict[str, Any], *, expect: int) -> dict[str, Any]:
        if self._csrf is None:
            await self.login()
        headers = {"X-CSRF-Token": self._csrf or ""}
        try:
            reply = await self._http.post(f"/admin/api/drills{path}", json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DrillUnavailable(f"cannot reach {self.base_url}: {exc}") from None
        return _answer(reply, expect)


def _answer(reply: httpx.Response, expect: int) -> dict[str, Any]:
    try:
        data = reply.json()
    except ValueError:
        data = None
    if reply.status_code != expect or not isinstance(data, dict):
        said = data.get("error") if isinstance(data, dict) else None
        path = reply.request.url.path
        raise DrillUnavailable(
            f"{reply.request.method} {path} answered HTTP {reply.status_code}"
            + (f": {said}" if said else "")
        )
    return data
