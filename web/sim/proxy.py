"""/_sim on a worker of `understudy serve --workers N` in demo mode: the shared simulator's
control API, forwarded.

With one process the simulator runs inside it and its control app is mounted at /_sim. With
several, the parent runs one simulator for all of them (every worker must see the same faults
and profiles), so a worker forwards /_sim/<path> to <simulator>/<path> and returns its answer as
it is. The same guard as the mounted control app stands in front (web.sim.access).
"""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

FORWARDED_HEADERS = ("content-type", "accept")
TIMEOUT_S = 10.0


class ControlProxy:
    """``app``: what to mount at /_sim; :meth:`aclose` at shutdown."""

    def __init__(self, sim_url: str) -> None:
        self._client = httpx.AsyncClient(base_url=sim_url.rstrip("/"), timeout=TIMEOUT_S)
        self.app = Starlette(
            routes=[Route("/{path:path}", self._forward, methods=["GET", "POST", "DELETE"])]
        )

    async def _forward(self, request: Request) -> Response:
        headers = {k: v for k, v in request.headers.items() if k in FORWARDED_HEADERS}
        try:
            answer = await self._client.request(
                request.method,
                "/" + request.path_params["path"],
                params=str(request.query_params),
                content=await request.body(),
                headers=headers,
            )
        except httpx.TransportError as exc:
            return Response(
                f"The simulated upstream does not answer ({exc.__class__.__name__}).\n",
                status_code=502,
                media_type="text/plain",
            )
        return Response(
            answer.content,
            status_code=answer.status_code,
            media_type=answer.headers.get("content-type"),
        )

    async def aclose(self) -> None:
        await self._client.aclose()
