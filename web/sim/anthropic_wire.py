"""The Anthropic Messages wire format: `POST /v1/messages`, JSON or SSE with `event:` lines."""

from __future__ import annotations

from typing import Any

from web.sim import accepted_key
from web.sim.http import Request
from web.sim.replies import count_tokens
from web.sim.wire import (
    InvalidCall,
    ModelCall,
    Reply,
    body_model,
    compact_json,
    random_id,
    text_of,
)

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
MESSAGES = {
    "invalid_request_error": "Invalid request",
    "authentication_error": "invalid x-api-key",
    "billing_error": "Your credit balance is too low to access the Anthropic API.",
    "permission_error": "Your API key does not have permission to use the specified resource.",
    "not_found_error": "Not found",
    "request_too_large": "Request exceeds the maximum allowed number of bytes.",
    "rate_limit_error": "Number of request tokens has exceeded your per-minute rate limit",
    "api_error": "Internal server error",
    "timeout_error": "Request timed out",
    "overloaded_error": "Overloaded",
}
STATUS_BY_TYPE = {t: s for s, t in ERROR_TYPES.items()}


def _frame(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {compact_json(data)}\n\n".encode()


class AnthropicWire:
    provider = "anthropic"
    preamble_events = 2  # message_start, content_block_start (the ping is not counted)
    default_error_type = "overloaded_error"
    ping: bytes | None = _frame("ping", {"type": "ping"})

    def new_request_id(self) -> str:
        return random_id("req_011C", 20)

    def id_header(self, request_id: str) -> dict[str, str]:
        return {"request-id": request_id}

    def has_key(self, request: Request) -> bool:
        if request.headers.get("x-api-key"):
            return accepted_key(request.headers["x-api-key"])
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and accepted_key(token)

    def model_of(self, request: Request) -> str | None:
        return body_model(request)

    def parse(self, request: Request, request_id: str) -> ModelCall:
        try:
            body = request.json()
        except ValueError:
            raise InvalidCall(self.error(400, request_id, message="Invalid JSON body")) from None
        if not isinstance(body, dict):
            raise InvalidCall(self.error(400, request_id, message="Body must be a JSON object"))
        model = body.get("model")
        messages = body.get("messages")
        max_tokens = body.get("max_tokens")
        problem = None
        if not isinstance(model, str) or not model:
            problem = "model: Field required"
        elif not isinstance(messages, list) or not messages:
            problem = "messages: Field required"
        elif isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            problem = "max_tokens: Field required"
        elif not all(
            isinstance(m, dict) and m.get("role") in ("user", "assistant") for m in messages
        ):
            problem = "messages: each message needs a role of user or assistant"
        if problem is not None:
            raise InvalidCall(self.error(400, request_id, message=problem))
        assert isinstance(model, str) and isinstance(messages, list) and isinstance(max_tokens, int)
        texts = [text_of(m.get("content")) for m in messages]
        users = [text_of(m.get("content")) for m in messages if m.get("role") == "user"]
        system = text_of(body.get("system"))
        return ModelCall(
            model=model,
            stream=body.get("stream") is True,
            prompt=users[-1] if users else "",
            input_tokens=count_tokens(system) + sum(count_tokens(t) for t in texts),
            max_tokens=max_tokens,
        )

    def error(
        self,
        status: int,
        request_id: str,
        *,
        error_type: str | None = None,
        message: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> Reply:
        kind = (
            error_type
            or ERROR_TYPES.get(status)
            or ("api_error" if status >= 500 else "invalid_request_error")
        )
        if message is None and code == "context_length_exceeded":
            message = "prompt is too long: 250000 tokens > 200000 maximum"
        body = {
            "type": "error",
            "error": {"type": kind, "message": message or MESSAGES.get(kind, "Error")},
            "request_id": request_id,
        }
        headers = {"content-type": "application/json", **self.id_header(request_id)}
        if retry_after is not None:
            headers["retry-after"] = f"{retry_after:g}"
        if status == 429:
            headers["anthropic-ratelimit-requests-limit"] = "50"
            headers["anthropic-ratelimit-requests-remaining"] = "0"
        if kind == "overloaded_error":
            headers["x-should-retry"] = "true"
        return Reply(status, headers, compact_json(body).encode())

    def unauthorized(self, request_id: str) -> Reply:
        return self.error(401, request_id, message="x-api-key header is required")

    def unknown_model(self, model: str, request_id: str) -> Reply:
        return self.error(404, request_id, message=f"model: {model}")

    def context_too_long(self, call: ModelCall, window: int, request_id: str) -> Reply:
        message = f"prompt is too long: {call.input_tokens} tokens > {window} maximum"
        return self.error(400, request_id, message=message)

    def status_for(self, error_type: str) -> int:
        return STATUS_BY_TYPE.get(error_type, 500)

    def _usage(self, call: ModelCall, output_tokens: int) -> dict[str, Any]:
        return {
            "input_tokens": call.input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": output_tokens,
            "service_tier": "standard",
        }

    def message(
        self, call: ModelCall, text: str, output_tokens: int, stop: bool, message_id: str
    ) -> dict[str, Any]:
        return {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": call.model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn" if stop else "max_tokens",
            "stop_sequence": None,
            "usage": self._usage(call, output_tokens),
        }

    def stream_headers(self, request_id: str) -> dict[str, str]:
        return {
            "content-type": "text/event-stream; charset=utf-8",
            "cache-control": "no-cache",
            **self.id_header(request_id),
        }

    def stream_start(self, call: ModelCall, message_id: str) -> list[bytes]:
        message: dict[str, Any] = {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": call.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": self._usage(call, 1),
        }
        return [
            _frame("message_start", {"type": "message_start", "message": message}),
            _frame(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            ),
        ]

    def stream_delta(self, call: ModelCall, message_id: str, text: str) -> bytes:
        return _frame(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": text},
            },
        )

    def stream_malformed(self, text: str) -> bytes:
        # A frame cut off inside its JSON, as a broken proxy would pass it on.
        whole = compact_json(
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": text},
            }
        )
        return f"event: content_block_delta\ndata: {whole[: len(whole) // 2]}\n\n".encode()

    def stream_end(
        self,
        call: ModelCall,
        message_id: str,
        output_tokens: int,
        stop: bool,
        terminated: bool,
        keep_tail: bool = False,
    ) -> list[bytes]:
        # Without the terminator the tail still comes (message_delta has the stop_reason): the
        # trap of a stop_reason without message_stop. `keep_tail` changes nothing here.
        usage = {"input_tokens": call.input_tokens, "output_tokens": output_tokens}
        frames = [
            _frame("content_block_stop", {"type": "content_block_stop", "index": 0}),
            _frame(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {
                        "stop_reason": "end_turn" if stop else "max_tokens",
                        "stop_sequence": None,
                    },
                    "usage": usage,
                },
            ),
        ]
        if terminated:
            frames.append(_frame("message_stop", {"type": "message_stop"}))
        return frames

    def stream_error(self, error_type: str, message: str | None, request_id: str) -> bytes:
        error = {"type": error_type, "message": message or MESSAGES.get(error_type, "Error")}
        return _frame("error", {"type": "error", "error": error, "request_id": request_id})
