"""Fault kinds and their validation; the registry the server consults on every model request is
:mod:`web.sim.fault_registry`.

A fault is ``{"model": "<id or *>", "kind": K, ...params, "count": N or null}``. ``count`` is how
many requests it hits (null: until deleted). When several faults match a request, the oldest wins.
An optional ``probability`` (0-1) makes a fault hit only that share of the requests it matches,
drawn per request (a miss leaves the request to the next matching fault and uses up no ``count``);
with a ``seed`` the draws are the same sequence every time, so a benchmark hits the same requests
on every run.
Each kind turns into a :class:`Plan`, the one description of "what goes wrong" that both the
streaming and the non-streaming responders follow, in each provider's own wire format:

    status            HTTP `status` with the provider's error body; `retry_after`, OpenAI `code`
    reset             TCP reset (SO_LINGER 0) after the request is read, before any byte
    hang              accept, read the request, never answer (until the client gives up)
    slow_first_token  the first token comes `delay_s` after the request (instead of the profile's)
    cut               the body dies (FIN, no terminating chunk) after `after_tokens` deltas
    stall             silent for `delay_s` after `after_tokens` deltas, then the same as cut
    error_event       the provider's in-stream error after `after_tokens` deltas (`error_type`)
    malformed         data event `n` (1-based, pings not counted) is invalid JSON; or the delta
                      after `after_tokens` deltas when `n` is not given
    no_terminator     streams only: the whole text, then the body ends cleanly without the
                      terminator (Anthropic: no message_stop; OpenAI: no finish_reason chunk,
                      no usage chunk, no [DONE]; Gemini: no finishReason chunk). OpenAI with
                      `tail` "keep": finish_reason and usage come, only [DONE] is missing.
                      `hold_s`: the body stays open, silent, that long before it ends
    flap              HTTP `status` (default 503) for `down_s` seconds from when it was set,
                      then the fault is gone (seconds on the registry's clock)
    batch_errored     Message Batches only: each result it hits is `errored` with `error_type`
                      (default overloaded_error) and `message`
    batch_expired     Message Batches only: each result it hits is `expired`

``api`` says which endpoints a fault hits: "sync" (the default: Messages, Chat Completions,
generateContent) or "batches" (the Anthropic Message Batches API, web.sim.batches). With
"batches", `status` and `flap` make `POST /v1/messages/batches` answer that status when one of
the batch's requests names the fault's model; `batch_errored` and `batch_expired` are always
"batches" and hit the batch's results one request at a time, when the batch ends. Kept apart so
that "every synchronous tier is down" and "batches still complete" can be set at once.

Without a stream: slow_first_token delays the whole response; cut and stall send the headers
(with the full Content-Length) and half the body, then close (stall after `delay_s`);
error_event becomes the HTTP error the provider uses for that type (Anthropic overloaded_error:
529, OpenAI server_error: 500); malformed sends a truncated JSON body; no_terminator neither hits
nor is used up by non-stream requests.

Every parameter has an upper bound (web.sim.limits), and so have ``count``, the texts and the
number of faults set at once; past one, :class:`FaultOutOfBounds` (the control API's 422).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from web.sim.limits import (
    MAX_AFTER_TOKENS,
    MAX_COUNT,
    MAX_DELAY_S,
    MAX_DOWN_S,
    MAX_EVENT_INDEX,
    MAX_MODEL_CHARS,
    MAX_RETRY_AFTER_S,
    MAX_SEED,
    MAX_TEXT_CHARS,
    OutOfBounds,
    shown,
)

Break = Literal["cut", "stall", "error"]
Drop = Literal["reset", "hang"]
Clock = Callable[[], float]
"""Seconds on a monotonic scale (only differences are used), like :func:`time.monotonic`."""


class FaultError(ValueError):
    """A fault definition that cannot be used; the message says which field and why."""


class FaultOutOfBounds(FaultError, OutOfBounds):
    """A fault past one of the simulator's bounds (web.sim.limits)."""


@dataclass
class Plan:
    """How one request will go wrong (the defaults: it will not)."""

    outcome: str = "ok"
    fault_id: str | None = None
    drop: Drop | None = None
    status: int | None = None
    retry_after: float | None = None
    code: str | None = None
    error_type: str | None = None
    message: str | None = None
    first_token_s: float | None = None
    break_after: int | None = None
    break_how: Break | None = None
    stall_s: float = 0.0
    malformed_event: int | None = None
    """1-based index among the stream's data events (pings not counted)."""
    malformed_after: int | None = None
    """Used when `malformed_event` is None: the delta after this many good ones is malformed."""
    terminated: bool = True
    keep_tail: bool = False
    """no_terminator: what comes before the terminator still comes (OpenAI: finish, usage)."""
    hold_s: float = 0.0
    """no_terminator: how long the body stays open, silent, after its last frame."""
    batch_result: Literal["errored", "expired"] | None = None
    """batch_errored / batch_expired: what one request of a Message Batch ends as."""


@dataclass(frozen=True)
class Param:
    kind: Literal["int", "number", "str"]
    default: Any = None
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    range_is_bound: bool = False
    """Below `minimum` is out of bounds too (an HTTP status outside 400-599), not just invalid."""
    choices: tuple[str, ...] = ()
    """For a "str": the only values allowed (none: any text up to `maximum` characters)."""


@dataclass(frozen=True)
class Kind:
    params: Mapping[str, Param]
    shape: Callable[[Plan, Mapping[str, Any]], None]
    stream_only: bool = False
    batch_only: bool = False
    """Only the Message Batches API has it (its ``api`` is always "batches")."""


def _status(plan: Plan, p: Mapping[str, Any]) -> None:
    plan.status = p["status"]
    plan.retry_after = p["retry_after"]
    plan.code = p["code"]
    plan.error_type = p["error_type"]
    plan.message = p["message"]


def _reset(plan: Plan, p: Mapping[str, Any]) -> None:
    plan.drop = "reset"


def _hang(plan: Plan, p: Mapping[str, Any]) -> None:
    plan.drop = "hang"


def _slow(plan: Plan, p: Mapping[str, Any]) -> None:
    plan.first_token_s = p["delay_s"]


def _cut(plan: Plan, p: Mapping[str, Any]) -> None:
    plan.break_after, plan.break_how = p["after_tokens"], "cut"


def _stall(plan: Plan, p: Mapping[str, Any]) -> None:
    plan.break_after, plan.break_how, plan.stall_s = p["after_tokens"], "stall", p["delay_s"]


def _error_event(plan: Plan, p: Mapping[str, Any]) -> None:
    plan.break_after, plan.break_how = p["after_tokens"], "error"
    plan.error_type, plan.message = p["error_type"], p["message"]


def _malformed(plan: Plan, p: Mapping[str, Any]) -> None:
    plan.malformed_event = p["n"]
    plan.malformed_after = p["after_tokens"]


def _no_terminator(plan: Plan, p: Mapping[str, Any]) -> None:
    plan.terminated = False
    plan.keep_tail = p["tail"] == "keep"
    plan.hold_s = p["hold_s"]


def _batch_errored(plan: Plan, p: Mapping[str, Any]) -> None:
    plan.batch_result = "errored"
    plan.error_type, plan.message = p["error_type"], p["message"]


def _batch_expired(plan: Plan, p: Mapping[str, Any]) -> None:
    plan.batch_result = "expired"


_STATUS = Param("int", required=True, minimum=400, maximum=599, range_is_bound=True)
_RETRY_AFTER = Param("number", minimum=0, maximum=MAX_RETRY_AFTER_S)
_AFTER = Param("int", default=3, minimum=0, maximum=MAX_AFTER_TOKENS)
_DELAY = Param("number", required=True, minimum=0, maximum=MAX_DELAY_S)
_TEXT = Param("str", maximum=MAX_TEXT_CHARS)
_ERROR_TEXT = {"code": _TEXT, "error_type": _TEXT, "message": _TEXT}
_PROBABILITY = Param("number", minimum=0, maximum=1)
_SEED = Param("int", minimum=0, maximum=MAX_SEED)

KINDS: dict[str, Kind] = {
    "status": Kind({"status": _STATUS, "retry_after": _RETRY_AFTER, **_ERROR_TEXT}, _status),
    "reset": Kind({}, _reset),
    "hang": Kind({}, _hang),
    "slow_first_token": Kind({"delay_s": _DELAY}, _slow),
    "cut": Kind({"after_tokens": _AFTER}, _cut),
    "stall": Kind(
        {"after_tokens": _AFTER, "delay_s": replace(_DELAY, required=False, default=60.0)}, _stall
    ),
    "error_event": Kind(
        {"after_tokens": _AFTER, "error_type": _TEXT, "message": _TEXT}, _error_event
    ),
    "malformed": Kind(
        {"n": Param("int", minimum=1, maximum=MAX_EVENT_INDEX), "after_tokens": _AFTER}, _malformed
    ),
    "no_terminator": Kind(
        {
            "tail": Param("str", default="drop", choices=("drop", "keep")),
            "hold_s": replace(_DELAY, required=False, default=0.0),
        },
        _no_terminator,
        stream_only=True,
    ),
    "flap": Kind(
        {
            "status": replace(_STATUS, required=False, default=503),
            "down_s": Param("number", required=True, minimum=0, maximum=MAX_DOWN_S),
            "retry_after": _RETRY_AFTER,
            **_ERROR_TEXT,
        },
        _status,
    ),
    "batch_errored": Kind(
        {"error_type": replace(_TEXT, default="overloaded_error"), "message": _TEXT},
        _batch_errored,
        batch_only=True,
    ),
    "batch_expired": Kind({}, _batch_expired, batch_only=True),
}
APIS = ("sync", "batches")
BATCH_CREATE_KINDS = frozenset({"status", "flap"})
"""Kinds with ``"api": "batches"`` that answer `POST /v1/messages/batches` with an error."""
BATCH_RESULT_KINDS = frozenset(k for k, kind in KINDS.items() if kind.batch_only)
"""Kinds that decide how one request of a batch ends."""


@dataclass
class Fault:
    id: str
    model: str
    kind: str
    params: dict[str, Any]
    count: int | None
    created: float = field(default_factory=time.time)
    hits: int = 0
    set_at: float = field(default=0.0, repr=False)
    """When the registry stored it, on the registry's clock (a flap's down_s starts here)."""
    probability: float | None = None
    """The share of matching requests it hits (None: every one)."""
    seed: int | None = None
    api: str = "sync"
    """Which endpoints it hits: "sync" or "batches" (see the module docstring)."""
    _draws: random.Random = field(default_factory=random.Random, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.seed is not None:
            self._draws = random.Random(self.seed)

    def draw(self) -> bool:
        """Whether it hits this request (always, without a probability). Under the registry lock."""
        return self.probability is None or self._draws.random() < self.probability

    def expired(self, now: float) -> bool:
        down_s = self.params.get("down_s")
        return self.kind == "flap" and down_s is not None and now >= self.set_at + down_s

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "kind": self.kind,
            **self.params,
            "count": self.count,
            **({} if self.probability is None else {"probability": self.probability}),
            **({} if self.seed is None else {"seed": self.seed}),
            **({} if self.api == "sync" else {"api": self.api}),
            "hits": self.hits,
            "created": self.created,
        }

    def plan(self) -> Plan:
        plan = Plan(outcome=self.kind, fault_id=self.id)
        KINDS[self.kind].shape(plan, self.params)
        return plan


def parse_fault(data: object, fault_id: str) -> Fault:
    """Validate a fault definition (decoded JSON); raise FaultError with a clear message."""
    if not isinstance(data, dict):
        raise FaultError("a fault must be a JSON object")
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise FaultError('"model" is required: a model id, or "*" for every model')
    if len(model) > MAX_MODEL_CHARS:
        raise FaultOutOfBounds(f'"model" must be at most {MAX_MODEL_CHARS} characters')
    kind_name = data.get("kind")
    if kind_name not in KINDS:
        raise FaultError(f'"kind" must be one of {", ".join(KINDS)}; got {kind_name!r}')
    kind = KINDS[kind_name]
    unknown = sorted(set(data) - {"model", "kind", *COMMON, *kind.params})
    if unknown:
        allowed = ", ".join([*COMMON, *kind.params])
        raise FaultError(
            f"unknown field(s) for {kind_name}: {', '.join(unknown)}; allowed: {allowed}"
        )
    count = data.get("count")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise FaultError('"count" must be a whole number >= 1, or null for "until deleted"')
    if count is not None and count > MAX_COUNT:
        raise FaultOutOfBounds(f'"count" must be <= {MAX_COUNT}, or null for "until deleted"')
    probability, seed = _share(data.get("probability"), data.get("seed"))
    api = _api(kind_name, data.get("api"))
    params = {name: _check(name, spec, data.get(name)) for name, spec in kind.params.items()}
    return Fault(
        id=fault_id,
        model=model,
        kind=kind_name,
        params=params,
        count=count,
        probability=probability,
        seed=seed,
        api=api,
    )


def _api(kind_name: str, api: Any) -> str:
    batch_only = KINDS[kind_name].batch_only
    if api is None:
        return "batches" if batch_only else "sync"
    if api not in APIS:
        raise FaultError(f'"api" must be one of {", ".join(APIS)}; got {api!r}')
    if batch_only and api != "batches":
        raise FaultError(f'{kind_name} only applies to "api": "batches"')
    if api == "batches" and not batch_only and kind_name not in BATCH_CREATE_KINDS:
        allowed = ", ".join(sorted(BATCH_CREATE_KINDS | BATCH_RESULT_KINDS))
        raise FaultError(f'{kind_name} does not apply to "api": "batches"; kinds there: {allowed}')
    return str(api)


COMMON = ("count", "probability", "seed", "api")
"""Fields every kind accepts besides its own."""


def _share(probability: Any, seed: Any) -> tuple[float | None, int | None]:
    if seed is not None and probability is None:
        raise FaultError('"seed" only applies with a "probability"')
    chance = _check("probability", _PROBABILITY, probability)
    return (None if chance is None else float(chance)), _check("seed", _SEED, seed)


def _check(name: str, spec: Param, value: Any) -> Any:
    if value is None:
        if spec.required:
            raise FaultError(f'"{name}" is required for this kind')
        return spec.default
    if spec.kind == "str":
        if not isinstance(value, str) or not value:
            raise FaultError(f'"{name}" must be a non-empty string')
        if spec.choices and value not in spec.choices:
            raise FaultError(f'"{name}" must be one of {", ".join(spec.choices)}; got {value!r}')
        if spec.maximum is not None and len(value) > spec.maximum:
            raise FaultOutOfBounds(f'"{name}" must be at most {shown(spec.maximum)} characters')
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FaultError(f'"{name}" must be a number')
    if spec.kind == "int" and not isinstance(value, int):
        raise FaultError(f'"{name}" must be a whole number')
    if not math.isfinite(value):
        raise FaultError(f'"{name}" must be finite')
    low, high = spec.minimum, spec.maximum
    if spec.range_is_bound and low is not None and high is not None and not low <= value <= high:
        raise FaultOutOfBounds(f'"{name}" must be between {shown(low)} and {shown(high)}')
    if low is not None and value < low:
        raise FaultError(f'"{name}" must be >= {low:g}')
    if high is not None and value > high:
        raise FaultOutOfBounds(f'"{name}" must be <= {shown(high)}')
    return value
