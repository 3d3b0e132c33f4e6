"""The simulator's control routes, one implementation served two ways.

The raw server answers them on its own port; :func:`control_app` wraps the same handler in a
Starlette app that the chat app mounts at ``/_sim``. Both share the SimServer's registry, log and
profiles, so a fault set through either is seen by the model endpoints.

    GET    /faults            list of faults (count = hits left, null = until deleted)
    POST   /faults            {"model", "kind", ...params, "count", "api"?} -> 201 the stored fault
                              ("api": "batches" hits only web.sim.batches)
    DELETE /faults            remove all
    DELETE /faults/{id}       remove one (404 if unknown)
    GET    /requests          list of {time, provider, model, stream, outcome, status, api, ...}
                              (?model=<id> filters)
    DELETE /requests          clear the log
    GET    /models            {"default": profile, "models": {id: profile}}
    POST   /models            {"model": "<id or *>", ...profile fields} -> the new profile

A POST (or a DELETE with a body) must say ``content-type: application/json``, else 415: a web
page can send any site a text/plain POST without a CORS preflight, so the type is what keeps
other pages from setting faults on a simulator that listens on localhost.

Invalid input is a 400; a value past one of the simulator's bounds (web.sim.limits) is a 422,
and a body over ``MAX_CONTROL_BODY_BYTES`` a 413. Who may call the routes when they are mounted
in the app is web.sim.access's business.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from web.sim.faults import FaultError
from web.sim.limits import MAX_CONTROL_BODY_BYTES, OutOfBounds

if TYPE_CHECKING:
    from web.sim.server import SimServer

ROUTES = ("/faults", "/requests", "/models")
JSON_TYPE = "application/json"


@dataclass(frozen=True)
class ControlReply:
    status: int
    payload: Any


def is_control_path(path: str) -> bool:
    return path.rstrip("/") in ROUTES or path.startswith("/faults/") or path in ("", "/")


class ControlAPI:
    def __init__(self, sim: SimServer) -> None:
        self._sim = sim

    def handle(
        self,
        method: str,
        path: str,
        body: bytes,
        query: dict[str, list[str]] | None = None,
        *,
        content_type: str = "",
    ) -> ControlReply:
        path = path.rstrip("/") or "/"
        query = query or {}
        if len(body) > MAX_CONTROL_BODY_BYTES:
            return ControlReply(
                413, {"error": f"the body must be at most {MAX_CONTROL_BODY_BYTES} bytes"}
            )
        if (method == "POST" or (method == "DELETE" and body)) and not _is_json(content_type):
            return _unsupported(content_type)
        if path == "/":
            return ControlReply(200, {"service": "understudy simulated upstream", "routes": ROUTES})
        if path.startswith("/faults/"):
            if method != "DELETE":
                return _not_allowed(method, path)
            fault_id = path.removeprefix("/faults/")
            if not self._sim.registry.remove(fault_id):
                return ControlReply(404, {"error": f"no fault with id {fault_id!r}"})
            return ControlReply(200, {"deleted": fault_id})
        if path == "/faults":
            return self._faults(method, body)
        if path == "/requests":
            return self._requests(method, query)
        if path == "/models":
            return self._models(method, body)
        return ControlReply(404, {"error": f"no route {path}"})

    def _faults(self, method: str, body: bytes) -> ControlReply:
        registry = self._sim.registry
        if method == "GET":
            return ControlReply(200, [f.to_json() for f in registry.list()])
        if method == "DELETE":
            count = len(registry.list())
            registry.clear()
            return ControlReply(200, {"deleted": count})
        if method == "POST":
            data, error = _decode(body)
            if error is not None:
                return error
            try:
                fault = registry.add(data)
            except OutOfBounds as exc:
                return ControlReply(422, {"error": str(exc)})
            except FaultError as exc:
                return ControlReply(400, {"error": str(exc)})
            return ControlReply(201, fault.to_json())
        return _not_allowed(method, "/faults")

    def _requests(self, method: str, query: dict[str, list[str]]) -> ControlReply:
        log = self._sim.log
        if method == "GET":
            models = query.get("model")
            model = models[0] if models else None
            return ControlReply(200, [e.to_json() for e in log.entries(model)])
        if method == "DELETE":
            count = log.count()
            log.clear()
            return ControlReply(200, {"deleted": count})
        return _not_allowed(method, "/requests")

    def _models(self, method: str, body: bytes) -> ControlReply:
        profiles = self._sim.profiles
        if method == "GET":
            return ControlReply(200, profiles.to_json())
        if method == "POST":
            data, error = _decode(body)
            if error is not None:
                return error
            if not isinstance(data, dict):
                return ControlReply(400, {"error": "the body must be a JSON object"})
            changes = dict(data)
            model = changes.pop("model", None)
            if not isinstance(model, str) or not model:
                return ControlReply(400, {"error": '"model" is required: a model id, or "*"'})
            try:
                profile = self._sim.set_profile(model, **changes)
            except OutOfBounds as exc:
                return ControlReply(422, {"error": str(exc)})
            except (ValueError, TypeError) as exc:
                return ControlReply(400, {"error": str(exc)})
            return ControlReply(200, {"model": model, **profile.to_json()})
        return _not_allowed(method, "/models")


def _decode(body: bytes) -> tuple[Any, ControlReply | None]:
    try:
        return json.loads(body), None
    except ValueError as exc:
        return None, ControlReply(400, {"error": f"the body is not valid JSON: {exc}"})


def _is_json(content_type: str) -> bool:
    return content_type.partition(";")[0].strip().lower() == JSON_TYPE


def _unsupported(content_type: str) -> ControlReply:
    got = repr(content_type) if content_type else "none"
    return ControlReply(
        415,
        {"error": f"send the body as JSON with content-type: {JSON_TYPE} (content-type was {got})"},
    )


def _not_allowed(method: str, path: str) -> ControlReply:
    return ControlReply(405, {"error": f"{method} is not allowed on {path}"})


def control_app(sim: SimServer) -> Starlette:
    """An ASGI app serving the control routes on the state of `sim` (mount it at /_sim)."""
    api = ControlAPI(sim)

    async def endpoint(request: StarletteRequest) -> Response:
        body = b""
        async for piece in request.stream():
            body += piece
            if len(body) > MAX_CONTROL_BODY_BYTES:
                break  # handle() refuses it; no need to hold the rest
        query = {k: request.query_params.getlist(k) for k in request.query_params}
        reply = api.handle(
            request.method,
            "/" + request.path_params["path"],
            body,
            query,
            content_type=request.headers.get("content-type", ""),
        )
        return JSONResponse(reply.payload, status_code=reply.status)

    return Starlette(routes=[Route("/{path:path}", endpoint, methods=["GET", "POST", "DELETE"])])
