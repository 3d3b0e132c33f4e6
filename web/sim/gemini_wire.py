"""The Gemini API wire format: `POST /v1beta/models/{model}:generateContent` (JSON) and
`:streamGenerateContent?alt=sse` (`data:` events, CRLF-separated, no `[DONE]`).

Unlike the other two formats the model and the streaming choice are in the path, the key in the
``x-goog-api-key`` header (or ``?key=``), and the only id is the body's ``responseId``. A stream has
no terminator of its own: the last chunk carries ``finishReason`` and the final ``usageMetadata``,
so "no terminator" here means that chunk never comes. Errors are Google's status envelope,
``{"error": {"code", "message", "status", "details"}}``; a retry delay travels as a
``google.rpc.RetryInfo`` detail, not as a header.

A fault's ``error_type`` is the status name (``RESOURCE_EXHAUSTED``, ``UNAVAILABLE``, ...); its
``code`` is the quota id a 429's ``QuotaFailure`` names (e.g. ``GenerateRequestsPerDayPerProjectPerModel``,
a quota that does not heal within minutes), or the ``ErrorInfo`` reason of any other status (e.g.
``API_KEY_INVALID``, which Gemini sends as a 400); ``context_length_exceeded`` reads like the
provider's own context error, as in the other formats.
"""

from __future__ import annotations

from typing import Any

from web.sim import accepted_key
from web.sim.http import Request
from web.sim.replies import count_tokens
from web.sim.wire import InvalidCall, ModelCall, Reply, compact_json, random_id, text_of

PATH_PREFIX = "/gemini/v1beta/models/"
STREAM_METHOD = "streamGenerateContent"
METHODS = ("generateContent", STREAM_METHOD)

STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
STATUS_BY_NAME = {name: status for status, name in STATUS_NAMES.items()} | {
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNKNOWN": 500,
}
MESSAGES = {
    "INVALID_ARGUMENT": "Request contains an invalid argument.",
    "UNAUTHENTICATED": "Request had invalid authentication credentials.",
    "PERMISSION_DENIED": "The caller does not have permission",
    "NOT_FOUND": "Requested entity was not found.",
    "ABORTED": "The operation was aborted.",
    "RESOURCE_EXHAUSTED": "Resource has been exhausted (e.g. check quota).",
    "CANCELLED": "The operation was cancelled.",
    "INTERNAL": "An internal error has occurred. Please retry or report in the issue tracker.",
    "NOT_IMPLEMENTED": "Method not implemented.",
    "UNAVAILABLE": "The model is overloaded. Please try again later.",
    "DEADLINE_EXCEEDED": "The request timed out. Please try again.",
}
PER_MINUTE_QUOTA = "GenerateRequestsPerMinutePerProjectPerModel"
_TYPE = "type.googleapis.com/google.rpc."


def model_in_path(path: str) -> tuple[str, str] | None:
    """(model, method) of a Gemini model path, or None when the path is not one."""
    if not path.startswith(PATH_PREFIX):
        return None
    model, sep, method = path.removeprefix(PATH_PREFIX).rpartition(":")
    if not sep or not model or "/" in model or method not in METHODS:
        return None
    return model, method


def _event(data: dict[str, Any]) -> bytes:
    return f"data: {compact_json(data)}\r\n\r\n".encode()


class GeminiWire:
    provider = "gemini"
    preamble_events = 0  # the first chunk already carries text
    default_error_type = "UNAVAILABLE"
    ping: bytes | None = None

    def new_request_id(self) -> str:
        return random_id("", 22)

    def id_header(self, request_id: str) -> dict[str, str]:
        return {}  # the id is the body's responseId

    def has_key(self, request: Request) -> bool:
        keys = request.query.get("key") or [""]
        return accepted_key(request.headers.get("x-goog-api-key", "") or keys[0])

    def model_of(self, request: Request) -> str | None:
        found = model_in_path(request.path)
        return found[0] if found else None

    def parse(self, request: Request, request_id: str) -> ModelCall:
        found = model_in_path(request.path)
        if found is None:  # the server routes only model paths here
            raise InvalidCall(self.error(404, request_id, message="Unknown method."))
        model, method = found
        stream = method == STREAM_METHOD
        if stream and (request.query.get("alt") or [""])[0] != "sse":
            message = "This simulator streams only Server-Sent Events: add ?alt=sse."
            raise InvalidCall(self.error(400, request_id, message=message))
        try:
            body = request.json()
        except ValueError:
            message = "Invalid JSON payload received. Unexpected token."
            raise InvalidCall(self.error(400, request_id, message=message)) from None
        if not isinstance(body, dict):
            message = "Invalid JSON payload received. Expected an object."
            raise InvalidCall(self.error(400, request_id, message=message))
        contents = body.get("contents")
        problem = None
        if not isinstance(contents, list) or not contents:
            problem = "* GenerateContentRequest.contents: contents is not specified"
        elif not all(isinstance(c, dict) and isinstance(c.get("parts"), list) for c in contents):
            problem = "* GenerateContentRequest.contents: each content needs parts"
        elif not all(c.get("role", "user") in ("user", "model") for c in contents):
            problem = "Please use a valid role: user, model."
        if problem is not None:
            raise InvalidCall(self.error(400, request_id, message=problem))
        assert isinstance(contents, list)
        texts = [text_of(c.get("parts")) for c in contents]
        users = [text_of(c.get("parts")) for c in contents if c.get("role", "user") == "user"]
        system = body.get("systemInstruction")
        system_text = text_of(system.get("parts")) if isinstance(system, dict) else ""
        config = body.get("generationConfig")
        limit = config.get("maxOutputTokens") if isinstance(config, dict) else None
        return ModelCall(
            model=model,
            stream=stream,
            prompt=users[-1] if users else "",
            input_tokens=count_tokens(system_text) + sum(count_tokens(t) for t in texts),
            max_tokens=limit
            if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0
            else None,
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
        name = (
            error_type
            or STATUS_NAMES.get(status)
            or ("INTERNAL" if status >= 500 else "INVALID_ARGUMENT")
        )
        if message is None and code == "context_length_exceeded":
            message = "The input token count (1048577) exceeds the maximum number of tokens allowed (1048576)."
        details: list[dict[str, Any]] = []
        if status == 429:
            quota_id = code or PER_MINUTE_QUOTA
            violation = {
                "quotaMetric": "generativelanguage.googleapis.com/generate_content_requests",
                "quotaId": quota_id,
            }
            details.append({"@type": _TYPE + "QuotaFailure", "violations": [violation]})
        elif code and code != "context_length_exceeded":
            details.append(
                {"@type": _TYPE + "ErrorInfo", "reason": code, "domain": "googleapis.com"}
            )
        if retry_after is not None:
            details.append({"@type": _TYPE + "RetryInfo", "retryDelay": f"{retry_after:g}s"})
        body = {
            "error": {
                "code": status,
                "message": message or MESSAGES.get(name, "Error"),
                "status": name,
                "details": details,
            }
        }
        headers = {"content-type": "application/json; charset=UTF-8"}
        return Reply(status, headers, compact_json(body).encode())

    def unauthorized(self, request_id: str) -> Reply:
        message = (
            "Method doesn't allow unregistered callers (callers without established identity). "
            "Please use API Key or other form of API consumer identity to call this API."
        )
        return self.error(403, request_id, message=message)

    def unknown_model(self, model: str, request_id: str) -> Reply:
        message = (
            f"models/{model} is not found for API version v1beta, or is not supported for "
            "generateContent. Call ListModels to see the list of available models and their "
            "supported methods."
        )
        return self.error(404, request_id, message=message)

    def context_too_long(self, call: ModelCall, window: int, request_id: str) -> Reply:
        message = (
            f"The input token count ({call.input_tokens}) exceeds the maximum number of tokens "
            f"allowed ({window})."
        )
        return self.error(400, request_id, message=message)

    def status_for(self, error_type: str) -> int:
        return STATUS_BY_NAME.get(error_type, 500)

    def _usage(self, call: ModelCall, output_tokens: int | None) -> dict[str, Any]:
        usage: dict[str, Any] = {"promptTokenCount": call.input_tokens}
        if output_tokens is not None:
            usage["candidatesTokenCount"] = output_tokens
        usage["totalTokenCount"] = call.input_tokens + (output_tokens or 0)
        usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": call.input_tokens}]
        return usage

    def _response(
        self,
        call: ModelCall,
        message_id: str,
        text: str,
        finish: str | None,
        output_tokens: int | None,
    ) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}}
        if finish is not None:
            candidate["finishReason"] = finish
        candidate["index"] = 0
        return {
            "candidates": [candidate],
            "usageMetadata": self._usage(call, output_tokens),
            "modelVersion": call.model,
            "responseId": message_id,
        }

    def message(
        self, call: ModelCall, text: str, output_tokens: int, stop: bool, message_id: str
    ) -> dict[str, Any]:
        finish = "STOP" if stop else "MAX_TOKENS"
        return self._response(call, message_id, text, finish, output_tokens)

    def stream_headers(self, request_id: str) -> dict[str, str]:
        return {"content-type": "text/event-stream", "cache-control": "no-cache"}

    def stream_start(self, call: ModelCall, message_id: str) -> list[bytes]:
        return []

    def stream_delta(self, call: ModelCall, message_id: str, text: str) -> bytes:
        return _event(self._response(call, message_id, text, None, None))

    def stream_malformed(self, text: str) -> bytes:
        whole = compact_json({"candidates": [{"content": {"parts": [{"text": text}]}}]})
        return f"data: {whole[: len(whole) // 2]}\r\n\r\n".encode()

    def stream_end(
        self,
        call: ModelCall,
        message_id: str,
        output_tokens: int,
        stop: bool,
        terminated: bool,
        keep_tail: bool = False,
    ) -> list[bytes]:
        # The finishReason chunk is the stream's only terminator: without it there is no tail.
        if not terminated:
            return []
        finish = "STOP" if stop else "MAX_TOKENS"
        return [_event(self._response(call, message_id, "", finish, output_tokens))]

    def stream_error(self, error_type: str, message: str | None, request_id: str) -> bytes:
        error = {
            "code": STATUS_BY_NAME.get(error_type, 500),
            "message": message or MESSAGES.get(error_type, "Error"),
            "status": error_type,
        }
        return _event({"error": error})
