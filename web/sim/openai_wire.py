"""The OpenAI Chat Completions wire format: `POST /v1/chat/completions`, JSON or `data:` chunks."""

from __future__ import annotations

import time
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

# status -> (type, code, message)
ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: (
        "invalid_request_error",
        "unsupported_country_region_territory",
        "Country, region, or territory not supported.",
    ),
    404: (
        "invalid_request_error",
        "model_not_found",
        "The model does not exist or you do not have access to it.",
    ),
    429: (
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for requests. Please try again later.",
    ),
    500: (
        "server_error",
        None,
        "The server had an error while processing your request. Sorry about that!",
    ),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}
CODES: dict[str, tuple[str, str]] = {
    # code -> (type, message)
    "insufficient_quota": (
        "insufficient_quota",
        "You exceeded your current quota, please check your plan and billing details.",
    ),
    "rate_limit_exceeded": ("requests", "Rate limit reached for requests. Please try again later."),
    "context_length_exceeded": (
        "invalid_request_error",
        "This model's maximum context length is 400000 tokens. Please reduce the length of the messages.",
    ),
    "content_policy_violation": (
        "invalid_request_error",
        "Your request was rejected as a result of our safety system.",
    ),
}
STATUS_BY_TYPE = {"server_error": 500, "requests": 429, "tokens": 429, "insufficient_quota": 429}


class OpenAIWire:
    provider = "openai"
    preamble_events = 1  # the role chunk
    default_error_type = "server_error"
    ping: bytes | None = None

    def new_request_id(self) -> str:
        return "req_" + random_id("", 32).lower()

    def id_header(self, request_id: str) -> dict[str, str]:
        return {"x-request-id": request_id}

    def has_key(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and accepted_key(token)

    def model_of(self, request: Request) -> str | None:
        return body_model(request)

    def parse(self, request: Request, request_id: str) -> ModelCall:
        try:
            body = request.json()
        except ValueError:
            raise InvalidCall(
                self.error(
                    400, request_id, message="We could not parse the JSON body of your request."
                )
            ) from None
        if not isinstance(body, dict):
            raise InvalidCall(
                self.error(400, request_id, message="The body must be a JSON object.")
            )
        model = body.get("model")
        messages = body.get("messages")
        problem = None
        if not isinstance(model, str) or not model:
            problem = "you must provide a model parameter"
        elif not isinstance(messages, list) or not messages:
            problem = "'messages' is a required property"
        elif not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
            problem = "each message must be an object with a 'role'"
        if problem is not None:
            raise InvalidCall(self.error(400, request_id, message=problem))
        assert isinstance(model, str) and isinstance(messages, list)
        users = [text_of(m.get("content")) for m in messages if m.get("role") == "user"]
        limit = body.get("max_completion_tokens", body.get("max_tokens"))
        options = body.get("stream_options")
        return ModelCall(
            model=model,
            stream=body.get("stream") is True,
            prompt=users[-1] if users else "",
            input_tokens=sum(count_tokens(text_of(m.get("content"))) for m in messages),
            max_tokens=limit
            if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0
            else None,
            include_usage=isinstance(options, dict) and options.get("include_usage") is True,
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
        default_type, default_code, default_message = ERRORS.get(
            status, ERRORS[500] if status >= 500 else ERRORS[400]
        )
        if code in CODES:
            default_type, default_message = CODES[code]
        error = {
            "message": message or default_message,
            "type": error_type or default_type,
            "param": "messages" if code == "context_length_exceeded" else None,
            "code": code or default_code,
        }
        headers = {"content-type": "application/json", **self.id_header(request_id)}
        if retry_after is not None:
            headers["retry-after"] = f"{retry_after:g}"
        if status == 429:
            headers["x-ratelimit-limit-requests"] = "500"
            headers["x-ratelimit-remaining-requests"] = "0"
        return Reply(status, headers, compact_json({"error": error}).encode())

    def unauthorized(self, request_id: str) -> Reply:
        return self.error(
            401,
            request_id,
            message="You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth.",
            code="missing_api_key",
        )

    def unknown_model(self, model: str, request_id: str) -> Reply:
        message = f"The model `{model}` does not exist or you do not have access to it."
        return self.error(404, request_id, message=message)

    def context_too_long(self, call: ModelCall, window: int, request_id: str) -> Reply:
        message = (
            f"This model's maximum context length is {window} tokens. However, your messages "
            f"resulted in {call.input_tokens} tokens. Please reduce the length of the messages."
        )
        return self.error(400, request_id, message=message, code="context_length_exceeded")

    def status_for(self, error_type: str) -> int:
        return STATUS_BY_TYPE.get(error_type, 500)

    def _usage(self, call: ModelCall, output_tokens: int) -> dict[str, Any]:
        return {
            "prompt_tokens": call.input_tokens,
            "completion_tokens": output_tokens,
            "total_tokens": call.input_tokens + output_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def message(
        self, call: ModelCall, text: str, output_tokens: int, stop: bool, message_id: str
    ) -> dict[str, Any]:
        return {
            "id": message_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": call.model,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": text,
                        "refusal": None,
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": "stop" if stop else "length",
                }
            ],
            "usage": self._usage(call, output_tokens),
            "service_tier": "default",
            "system_fingerprint": None,
        }

    def stream_headers(self, request_id: str) -> dict[str, str]:
        return {
            "content-type": "text/event-stream; charset=utf-8",
            "cache-control": "no-cache",
            **self.id_header(request_id),
        }

    def _chunk(
        self,
        call: ModelCall,
        message_id: str,
        choices: list[dict[str, Any]],
        usage: dict[str, Any] | None = None,
    ) -> bytes:
        data: dict[str, Any] = {
            "id": message_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": call.model,
            "service_tier": "default",
            "system_fingerprint": None,
            "choices": choices,
        }
        if call.include_usage:
            data["usage"] = usage
        return f"data: {compact_json(data)}\n\n".encode()

    def _choice(self, delta: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]

    def stream_start(self, call: ModelCall, message_id: str) -> list[bytes]:
        delta = {"role": "assistant", "content": "", "refusal": None}
        return [self._chunk(call, message_id, self._choice(delta))]

    def stream_delta(self, call: ModelCall, message_id: str, text: str) -> bytes:
        return self._chunk(call, message_id, self._choice({"content": text}))

    def stream_malformed(self, text: str) -> bytes:
        whole = compact_json(
            {"object": "chat.completion.chunk", "choices": [{"delta": {"content": text}}]}
        )
        return f"data: {whole[: len(whole) // 2]}\n\n".encode()

    def stream_end(
        self,
        call: ModelCall,
        message_id: str,
        output_tokens: int,
        stop: bool,
        terminated: bool,
        keep_tail: bool = False,
    ) -> list[bytes]:
        # A realistic truncation loses the whole tail: finish_reason chunk, usage chunk, [DONE];
        # `keep_tail` loses only [DONE], as a proxy that holds the stream open does.
        if not terminated and not keep_tail:
            return []
        frames = [self._chunk(call, message_id, self._choice({}, "stop" if stop else "length"))]
        if call.include_usage:
            frames.append(self._chunk(call, message_id, [], self._usage(call, output_tokens)))
        if terminated:
            frames.append(b"data: [DONE]\n\n")
        return frames

    def stream_error(self, error_type: str, message: str | None, request_id: str) -> bytes:
        default = ERRORS[500][2] if error_type == "server_error" else "An error occurred."
        error = {"message": message or default, "type": error_type, "param": None, "code": None}
        return f"data: {compact_json({'error': error})}\n\n".encode()
