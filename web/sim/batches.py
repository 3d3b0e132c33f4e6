"""The Anthropic Message Batches API, in its real wire format, on the simulator's clock.

    POST   /anthropic/v1/messages/batches               {"requests": [{custom_id, params}]}
    GET    /anthropic/v1/messages/batches               ?after_id= &before_id= &limit= (newest first)
    GET    /anthropic/v1/messages/batches/{id}          the batch object
    GET    /anthropic/v1/messages/batches/{id}/results  JSONL, once ended (the batch's results_url)
    POST   /anthropic/v1/messages/batches/{id}/cancel   in_progress -> canceling
    DELETE /anthropic/v1/messages/batches/{id}          an ended batch only

A batch is ``in_progress`` for the longest ``batch_delay_s`` of its requests' models' profiles,
measured on the fault registry's clock (a test steps the clock instead of sleeping); then it is
``ended`` and every request has its result. Each request's params are checked then, as the real
API does (an invalid one is an ``errored`` result, not a failed batch), and a valid one gets the
same deterministic reply the Messages endpoint gives (web.sim.replies) as a full Message. A batch
that would take 24 h or more expires instead. A cancel makes it ``canceling``; the next look at
it finds it ``ended`` with every unanswered request ``canceled``.

State changes lazily, whenever a batch is looked at, so nothing runs in the background. Faults
with ``"api": "batches"`` (web.sim.faults) hit here and nowhere else.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from web.sim.anthropic_wire import AnthropicWire
from web.sim.exchange import INLINE_TOKENS
from web.sim.faults import BATCH_CREATE_KINDS, BATCH_RESULT_KINDS, Plan
from web.sim.http import Request
from web.sim.limits import MAX_BATCH_REQUESTS, MAX_BATCHES
from web.sim.replies import first_tokens
from web.sim.requestlog import LoggedRequest
from web.sim.wire import InvalidCall, ModelCall, Reply, compact_json, random_id

if TYPE_CHECKING:
    from web.sim.server import SimServer

PREFIX = "/anthropic/v1/messages/batches"
EXPIRE_S = 24 * 3600.0
"""The real API expires whatever has not ended 24 h after creation."""
CUSTOM_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
DEFAULT_LIMIT = 20
MAX_LIMIT = 1000


class Status(StrEnum):
    IN_PROGRESS = "in_progress"
    CANCELING = "canceling"
    ENDED = "ended"


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    ERRORED = "errored"
    CANCELED = "canceled"
    EXPIRED = "expired"


def is_batches_path(path: str) -> bool:
    return path.rstrip("/") == PREFIX or path.startswith(PREFIX + "/")


@dataclass
class Item:
    custom_id: str
    params: Any
    """As the client sent them: checked when the batch ends, like the real API does."""
    outcome: Outcome | None = None
    call: ModelCall | None = None
    error: dict[str, Any] | None = None
    """The errored result's `error` object."""
    message_id: str = field(default_factory=lambda: random_id("msg_01", 22))


@dataclass
class Batch:
    id: str
    seq: int
    created: float
    ends: float
    items: list[Item]
    status: Status = Status.IN_PROGRESS
    cancel_at: float | None = None
    ended_at: float | None = None


class BatchAPI:
    """The batches of one SimServer, in memory; safe to share across threads."""

    def __init__(self, sim: SimServer) -> None:
        self._sim = sim
        self._wire = AnthropicWire()
        self._batches: dict[str, Batch] = {}
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        # Wall-clock times shown on the wire follow the registry's clock, so a test that steps
        # the clock sees `ended_at` move with it.
        self._origin = sim.registry.clock()
        self._epoch = time.time()

    def _now(self) -> float:
        return self._sim.registry.clock()

    def _stamp(self, at: float | None) -> str | None:
        if at is None:
            return None
        wall = datetime.fromtimestamp(self._epoch + (at - self._origin), UTC)
        return wall.isoformat().replace("+00:00", "Z")

    async def handle(self, request: Request) -> Reply:
        rid = self._wire.new_request_id()
        model: str | None = None
        plan = Plan()
        if not self._wire.has_key(request):
            reply = self._wire.unauthorized(rid)
        else:
            reply, model, plan = await self._route(request, rid)
        outcome = plan.outcome if plan.fault_id else ("ok" if reply.status < 400 else None)
        self._sim.log.add(
            LoggedRequest(
                provider="anthropic",
                model=model,
                stream=False,
                outcome=outcome or f"error:{reply.status}",
                status=reply.status,
                request_id=rid,
                fault_id=plan.fault_id,
                api="batches",
            )
        )
        return reply

    async def _route(self, request: Request, rid: str) -> tuple[Reply, str | None, Plan]:
        parts = request.path.rstrip("/")[len(PREFIX) :].strip("/").split("/")
        method = request.method
        if parts == [""]:
            if method == "POST":
                return self._create(request, rid)
            if method == "GET":
                return self._list(request, rid), None, Plan()
            return self._error(405, rid, f"use GET or POST on {PREFIX}"), None, Plan()
        with self._lock:
            batch = self._batches.get(parts[0])
            if batch is not None:
                self._settle(batch)
        if batch is None or len(parts) > 2:
            return self._error(404, rid, f"message_batch: {parts[0]} not found"), None, Plan()
        model = _first_model(batch.items)
        action = parts[1] if len(parts) == 2 else ""
        allowed = {"": ("GET", "DELETE"), "results": ("GET",), "cancel": ("POST",)}.get(action)
        if allowed is None:
            return self._error(404, rid, f"no route {request.path}"), model, Plan()
        if method not in allowed:
            return self._error(405, rid, f"use {' or '.join(allowed)}"), model, Plan()
        if action == "results":
            return await self._results(batch, rid), model, Plan()
        if action == "cancel":
            with self._lock:
                if batch.status is Status.IN_PROGRESS:
                    batch.status, batch.cancel_at = Status.CANCELING, self._now()
            return self._json(rid, self._object(batch)), model, Plan()
        if method == "DELETE":
            if batch.status is not Status.ENDED:
                message = "a batch can be deleted only once it has ended; cancel it first"
                return self._error(400, rid, message), model, Plan()
            with self._lock:
                self._batches.pop(batch.id, None)
            return self._json(rid, {"id": batch.id, "type": "message_batch_deleted"}), model, Plan()
        return self._json(rid, self._object(batch)), model, Plan()

    def _create(self, request: Request, rid: str) -> tuple[Reply, str | None, Plan]:
        try:
            body = request.json()
        except ValueError:
            return self._error(400, rid, "Invalid JSON body"), None, Plan()
        items, problem = _items(body)
        if problem is not None:
            return self._error(400, rid, problem), None, Plan()
        models = list(dict.fromkeys(m for m in (_model(i.params) for i in items) if m))
        for name in models:
            plan = self._sim.registry.take(
                name, stream=False, api="batches", kinds=BATCH_CREATE_KINDS
            )
            if plan.status is not None:
                reply = self._wire.error(
                    plan.status,
                    rid,
                    error_type=plan.error_type,
                    message=plan.message,
                    code=plan.code,
                    retry_after=plan.retry_after,
                )
                return reply, name, plan
        profiles = self._sim.profiles
        delay = max(
            (profiles.get(m).batch_delay_s for m in models if profiles.knows(m)),
            default=profiles.default.batch_delay_s,
        )
        with self._lock:
            if len(self._batches) >= MAX_BATCHES and not self._forget_oldest_ended():
                message = f"the simulator holds at most {MAX_BATCHES} batches; wait for some to end"
                return self._error(429, rid, message), _first_model(items), Plan()
            now = self._now()
            batch = Batch(
                id=random_id("msgbatch_01", 22),
                seq=next(self._seq),
                created=now,
                ends=now + delay,
                items=items,
            )
            self._batches[batch.id] = batch
            shown = self._object(batch)
        return self._json(rid, shown), _first_model(items), Plan()

    def _forget_oldest_ended(self) -> bool:
        for batch in self._batches.values():
            self._settle(batch)
            if batch.status is Status.ENDED:
                del self._batches[batch.id]
                return True
        return False

    def _list(self, request: Request, rid: str) -> Reply:
        query = {k: v[-1] for k, v in request.query.items() if v}
        raw_limit = query.get("limit", str(DEFAULT_LIMIT))
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
            return self._error(400, rid, f"limit: must be a whole number from 1 to {MAX_LIMIT}")
        limit = int(raw_limit)
        with self._lock:
            ordered = sorted(self._batches.values(), key=lambda b: b.seq, reverse=True)
            for batch in ordered:
                self._settle(batch)
            ids = [b.id for b in ordered]
            for name in ("after_id", "before_id"):
                if name in query and query[name] not in ids:
                    return self._error(404, rid, f"{name}: message_batch {query[name]} not found")
            if "after_id" in query:
                ordered = ordered[ids.index(query["after_id"]) + 1 :]
                page = ordered[:limit]
            elif "before_id" in query:
                ordered = ordered[: ids.index(query["before_id"])]
                page = ordered[-limit:]
            else:
                page = ordered[:limit]
            data = [self._object(b) for b in page]
        return self._json(
            rid,
            {
                "data": data,
                "has_more": len(ordered) > len(page),
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            },
        )

    def _settle(self, batch: Batch) -> None:
        """Bring `batch` up to the clock: end it when its time has come. Under the lock."""
        if batch.status is Status.ENDED:
            return
        now = self._now()
        if batch.status is Status.CANCELING:
            for item in batch.items:
                item.outcome = item.outcome or Outcome.CANCELED
            batch.status, batch.ended_at = Status.ENDED, now
            return
        expires = batch.created + EXPIRE_S
        if batch.ends >= expires and now >= expires:
            for item in batch.items:
                item.outcome = Outcome.EXPIRED
            batch.status, batch.ended_at = Status.ENDED, expires
        elif now >= batch.ends:
            for item in batch.items:
                self._answer(item)
            batch.status, batch.ended_at = Status.ENDED, batch.ends

    def _answer(self, item: Item) -> None:
        """Decide how one request ends: the Messages endpoint's checks, then the faults."""
        rid = self._wire.new_request_id()
        try:
            call = self._wire.parse(_as_request(item.params), rid)
        except InvalidCall as exc:
            return self._errored(item, exc.reply)
        profiles = self._sim.profiles
        if not profiles.knows(call.model):
            return self._errored(item, self._wire.unknown_model(call.model, rid))
        window = profiles.get(call.model).context_window
        if call.input_tokens > window:
            return self._errored(item, self._wire.context_too_long(call, window, rid))
        plan = self._sim.registry.take(
            call.model, stream=False, api="batches", kinds=BATCH_RESULT_KINDS
        )
        if plan.batch_result == "expired":
            item.outcome = Outcome.EXPIRED
        elif plan.batch_result == "errored":
            error_type = plan.error_type or self._wire.default_error_type
            status = self._wire.status_for(error_type)
            reply = self._wire.error(status, rid, error_type=error_type, message=plan.message)
            self._errored(item, reply)
        else:
            item.outcome, item.call = Outcome.SUCCEEDED, call

    def _errored(self, item: Item, reply: Reply) -> None:
        error = json.loads(reply.body)
        error.pop("request_id", None)
        item.outcome, item.error = Outcome.ERRORED, error

    async def _results(self, batch: Batch, rid: str) -> Reply:
        if batch.status is not Status.ENDED:
            message = f"message_batch {batch.id} has not ended yet ({batch.status}); poll it first"
            return self._error(400, rid, message)
        tokens = sum(
            min(self._sim.profiles.get(i.call.model).reply_tokens, i.call.max_tokens or 1)
            for i in batch.items
            if i.call is not None
        )
        if tokens <= INLINE_TOKENS:
            body = self._jsonl(batch)
        else:
            body = await asyncio.to_thread(self._jsonl, batch)
        headers = {"content-type": "application/binary", **self._wire.id_header(rid)}
        return Reply(200, headers, body)

    def _jsonl(self, batch: Batch) -> bytes:
        lines = []
        for item in batch.items:
            result: dict[str, Any] = {"type": str(item.outcome)}
            if item.outcome is Outcome.SUCCEEDED and item.call is not None:
                call = item.call
                profile = self._sim.profiles.get(call.model)
                tokens, stop = first_tokens(
                    call.model, call.prompt, profile.reply_tokens, call.max_tokens
                )
                result["message"] = self._wire.message(
                    call, "".join(tokens), len(tokens), stop, item.message_id
                )
            elif item.outcome is Outcome.ERRORED:
                result["error"] = item.error
            lines.append(compact_json({"custom_id": item.custom_id, "result": result}) + "\n")
        return "".join(lines).encode()

    def _object(self, batch: Batch) -> dict[str, Any]:
        counts = {str(o): 0 for o in Outcome}
        processing = 0
        for item in batch.items:
            if item.outcome is None:
                processing += 1
            else:
                counts[str(item.outcome)] += 1
        ended = batch.status is Status.ENDED
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": str(batch.status),
            "request_counts": {"processing": processing, **counts},
            "created_at": self._stamp(batch.created),
            "expires_at": self._stamp(batch.created + EXPIRE_S),
            "ended_at": self._stamp(batch.ended_at),
            "cancel_initiated_at": self._stamp(batch.cancel_at),
            "archived_at": None,
            "results_url": f"{self._sim.url}{PREFIX}/{batch.id}/results" if ended else None,
        }

    def _json(self, rid: str, data: Any) -> Reply:
        headers = {"content-type": "application/json", **self._wire.id_header(rid)}
        return Reply(200, headers, compact_json(data).encode())

    def _error(self, status: int, rid: str, message: str) -> Reply:
        return self._wire.error(status, rid, message=message)


def _items(body: Any) -> tuple[list[Item], str | None]:
    """The batch's requests, or the reason the whole batch is refused."""
    if not isinstance(body, dict) or not isinstance(body.get("requests"), list):
        return [], "requests: Field required (a list of {custom_id, params})"
    requests = body["requests"]
    if not requests:
        return [], "requests: a batch needs at least 1 request"
    if len(requests) > MAX_BATCH_REQUESTS:
        return [], f"requests: at most {MAX_BATCH_REQUESTS} requests in one batch on the simulator"
    items: list[Item] = []
    seen: set[str] = set()
    for index, entry in enumerate(requests):
        where = f"requests.{index}"
        if not isinstance(entry, dict):
            return [], f"{where}: must be an object with custom_id and params"
        custom_id, params = entry.get("custom_id"), entry.get("params")
        if not isinstance(custom_id, str) or not CUSTOM_ID.match(custom_id):
            return [], f"{where}.custom_id: 1 to 64 letters, digits, '-' or '_'"
        if custom_id in seen:
            return [], f"{where}.custom_id: duplicate custom_id {custom_id!r} in this batch"
        if not isinstance(params, dict):
            return [], f"{where}.params: Field required (the body of a Messages request)"
        seen.add(custom_id)
        items.append(Item(custom_id=custom_id, params=params))
    return items, None


def _model(params: Any) -> str | None:
    model = params.get("model") if isinstance(params, dict) else None
    return model if isinstance(model, str) and model else None


def _first_model(items: list[Item]) -> str | None:
    return next((m for m in (_model(i.params) for i in items) if m), None)


def _as_request(params: Any) -> Request:
    """One batch request's params as the Messages endpoint would have received them."""
    body = compact_json({**params, "stream": False}).encode()
    return Request("POST", "/anthropic/v1/messages", {}, {}, body, keep_alive=True)
