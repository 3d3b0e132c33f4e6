"""What a provider's wire format must provide; one module per format implements it.

The responder in :mod:`web.sim.server` is written once against :class:`Dialect`: it decides timing
and faults, the dialect decides the bytes.
"""

from __future__ import annotations

import json
import secrets
import string
from dataclasses import dataclass
from typing import Any, Protocol

from web.sim.http import Request

_ALPHABET = string.ascii_letters + string.digits


def compact_json(data: Any) -> str:
    """JSON as the providers send it: no spaces, UTF-8 text unescaped."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def random_id(prefix: str, length: int) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))


@dataclass(frozen=True)
class ModelCall:
    """A parsed, valid model request."""

    model: str
    stream: bool
    prompt: str
    """The text of the last user message."""
    input_tokens: int
    max_tokens: int | None
    include_usage: bool = False


@dataclass(frozen=True)
class Reply:
    """A complete HTTP response: status, headers (without framing) and a body."""

    status: int
    headers: dict[str, str]
    body: bytes


class InvalidCall(Exception):
    """The request body is not a valid call; carries the provider's 4xx reply."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


class Dialect(Protocol):
    provider: str
    preamble_events: int
    """How many data events come before the first text delta (pings not counted)."""
    default_error_type: str
    """The type of the in-stream error event when the fault does not name one."""
    ping: bytes | None
    """A keep-alive frame sent once after the preamble (not a data event), if the format has one."""

    def new_request_id(self) -> str: ...

    def id_header(self, request_id: str) -> dict[str, str]: ...

    def has_key(self, request: Request) -> bool: ...

    def model_of(self, request: Request) -> str | None:
        """The model a request names, read without validating it (for the request log)."""
        ...

    def parse(self, request: Request, request_id: str) -> ModelCall:
        """Validate the JSON body; raise InvalidCall with the provider's 400."""
        ...

    def error(
        self,
        status: int,
        request_id: str,
        *,
        error_type: str | None = None,
        message: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> Reply: ...

    def unauthorized(self, request_id: str) -> Reply: ...

    def unknown_model(self, model: str, request_id: str) -> Reply: ...

    def context_too_long(self, call: ModelCall, window: int, request_id: str) -> Reply: ...

    def status_for(self, error_type: str) -> int:
        """The HTTP status the provider uses for an error of this type (non-stream error_event)."""
        ...

    def message(
        self, call: ModelCall, text: str, output_tokens: int, stop: bool, message_id: str
    ) -> dict[str, Any]:
        """The non-streaming body. `stop` False means the reply hit max_tokens."""
        ...

    def stream_headers(self, request_id: str) -> dict[str, str]: ...

    def stream_start(self, call: ModelCall, message_id: str) -> list[bytes]:
        """Frames before the first delta; `preamble_events` of them are data events."""
        ...

    def stream_delta(self, call: ModelCall, message_id: str, text: str) -> bytes: ...

    def stream_malformed(self, text: str) -> bytes: ...

    def stream_end(
        self,
        call: ModelCall,
        message_id: str,
        output_tokens: int,
        stop: bool,
        terminated: bool,
        keep_tail: bool = False,
    ) -> list[bytes]:
        """Frames after the last delta; without the terminator when `terminated` is False, and
        then without what comes before it too unless `keep_tail` (a format that has a tail)."""
        ...

    def stream_error(self, error_type: str, message: str | None, request_id: str) -> bytes: ...


def body_model(request: Request) -> str | None:
    """The body's "model", for formats that name it there."""
    try:
        body = request.json()
    except ValueError:
        return None
    model = body.get("model") if isinstance(body, dict) else None
    return model if isinstance(model, str) else None


def text_of(content: Any) -> str:
    """The text of a message content: a string, or a list of blocks/parts with "text"."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""
