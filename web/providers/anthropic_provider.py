"""Anthropic Messages adapter on ``AsyncAnthropic``: text deltas and one Usage out, ProviderError for
everything else.

The SDK sends the request and raises its typed errors for HTTP error statuses; the SSE body is read
by :func:`web.providers.wire.stream_sse` through this module's event handling, so that success
means ``message_stop`` was seen, not merely a ``stop_reason``: a stream that ends without it is
TRUNCATED. In-stream ``event: error`` frames arrive with HTTP status 200 and are classified by
their ``error.type``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anthropic
from anthropic.types import MessageParam

from web.providers import wire
from web.providers.base import ChatRequest, ErrorKind, ProviderError, StreamItem, Usage
from web.settings import Timeouts

_TYPE_KINDS = {
    "invalid_request_error": ErrorKind.BAD_REQUEST,
    "request_too_large": ErrorKind.BAD_REQUEST,
    "authentication_error": ErrorKind.AUTH,
    "permission_error": ErrorKind.AUTH,
    "billing_error": ErrorKind.QUOTA_EXHAUSTED,
    "not_found_error": ErrorKind.NOT_FOUND,
    "rate_limit_error": ErrorKind.RATE_LIMITED,
    "timeout_error": ErrorKind.TIMEOUT,
    "api_error": ErrorKind.SERVER_ERROR,
    "overloaded_error": ErrorKind.OVERLOADED,
    "conflict_error": ErrorKind.SERVER_ERROR,
}

_STOP_REASON_ERRORS = {
    "refusal": (ErrorKind.CONTENT_POLICY, "the model refused (stop_reason refusal)"),
    "model_context_window_exceeded": (
        ErrorKind.CONTEXT_TOO_LONG,
        "the reply hit the model's context window (stop_reason model_context_window_exceeded)",
    ),
}


class AnthropicProvider:
    name = "anthropic"

    def __init__(
        self, *, api_key: str, base_url: str | None = None, timeouts: Timeouts | None = None
    ) -> None:
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key,
            base_url=base_url,
            max_retries=0,
            timeout=wire.http_timeout(timeouts or Timeouts()),
            # aiohttp reads a streamed body for a fraction of httpx2's CPU (see wire.py).
            http_client=anthropic.DefaultAioHttpClient(),
        )
        self.base_url = str(self._client.base_url)

    async def aclose(self) -> None:
        await self._client.close()

    def stream(self, request: ChatRequest, model: str) -> AsyncIterator[StreamItem]:
        messages: list[MessageParam] = []
        for m in request.messages:
            if m.role == "user":
                messages.append({"role": "user", "content": m.content})
            else:
                messages.append({"role": "assistant", "content": m.content})
        return wire.stream_sse(
            lambda: self._client.messages.with_streaming_response.create(
                model=model,
                max_tokens=request.max_tokens,
                messages=messages,
                system=request.system if request.system else anthropic.omit,
                stream=True,
            ),
            _StreamState,
            ERRORS,
        )


class _StreamState:
    """What the event sequence has shown so far."""

    whole = False
    """Nothing but message_stop proves the reply complete: stop_reason may come without it."""

    def __init__(self, request_id: str | None) -> None:
        self.request_id = request_id
        self.done = False
        self.stop_reason: str | None = None
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None

    def handle(self, event: wire.ServerEvent) -> str | None:
        """Text to emit, if any. Raises ProviderError for error events and malformed data."""
        if event.event == "ping":
            return None
        payload = wire.parse_json(event.data, self.request_id, "event")
        kind = payload.get("type", event.event)
        if event.event == "error" or kind == "error":
            raise _stream_error(payload, self.request_id)
        if kind == "content_block_delta":
            delta = payload.get("delta")
            if isinstance(delta, dict) and delta.get("type") == "text_delta":
                text = delta.get("text")
                if not isinstance(text, str):
                    raise wire.malformed("text_delta without text", request_id=self.request_id)
                return text
        elif kind == "message_start":
            message = payload.get("message")
            usage = message.get("usage") if isinstance(message, dict) else None
            self.input_tokens = _tokens(usage, "input_tokens")
        elif kind == "message_delta":
            delta = payload.get("delta")
            if isinstance(delta, dict) and isinstance(delta.get("stop_reason"), str):
                self.stop_reason = delta["stop_reason"]
            self.output_tokens = _tokens(payload.get("usage"), "output_tokens", self.output_tokens)
        elif kind == "message_stop":
            self.done = True
        return None

    def finish(self) -> Usage:
        if not self.done:
            raise wire.truncated("ended without message_stop", request_id=self.request_id)
        if self.stop_reason in _STOP_REASON_ERRORS:
            kind, message = _STOP_REASON_ERRORS[self.stop_reason]
            raise ProviderError(kind, message, request_id=self.request_id)
        return Usage(
            self.input_tokens,
            self.output_tokens,
            self.request_id,
            stop_reason=self.stop_reason,
            hit_length_limit=self.stop_reason == "max_tokens",
        )


def _tokens(usage: object, key: str, default: int | None = None) -> int | None:
    if isinstance(usage, dict) and isinstance(usage.get(key), int):
        value: int = usage[key]
        return value
    return default


def kind_for_error(error_type: str | None, message: str, status: int | None) -> ErrorKind:
    by_status = wire.kind_for_status(status) if status else None
    kind = _TYPE_KINDS.get(error_type or "") or by_status or ErrorKind.SERVER_ERROR
    if kind is ErrorKind.BAD_REQUEST and by_status is not None:
        kind = by_status  # the generic invalid_request_error type on e.g. a 408 or 409
    quota_like = kind in (ErrorKind.BAD_REQUEST, ErrorKind.RATE_LIMITED)
    if quota_like and wire.mentions(message, *wire.QUOTA_HINTS):
        return ErrorKind.QUOTA_EXHAUSTED
    if kind is ErrorKind.BAD_REQUEST:
        if wire.mentions(message, *wire.CONTEXT_HINTS):
            return ErrorKind.CONTEXT_TOO_LONG
        if wire.mentions(message, *wire.POLICY_HINTS):
            return ErrorKind.CONTENT_POLICY
    return kind


def _status_error(exc: anthropic.APIStatusError) -> ProviderError:
    status = exc.status_code
    message = exc.api_message or exc.message
    hints = f"{message} {exc.error_code or ''}"
    body_request_id = exc.body.get("request_id") if isinstance(exc.body, dict) else None
    return ProviderError(
        kind_for_error(exc.type, hints, status),
        f"HTTP {status} {exc.type or 'error'}: {message}",
        status=status,
        request_id=exc.request_id
        or (body_request_id if isinstance(body_request_id, str) else None),
        retry_after=wire.retry_after(exc.response.headers),
    )


def _stream_error(payload: dict[str, Any], request_id: str | None) -> ProviderError:
    error = payload.get("error")
    error_type = error.get("type") if isinstance(error, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    body_request_id = payload.get("request_id")
    text = message if isinstance(message, str) else "error event"
    return ProviderError(
        kind_for_error(error_type if isinstance(error_type, str) else None, text, None),
        f"in-stream {error_type or 'error'}: {text}",
        request_id=body_request_id if isinstance(body_request_id, str) else request_id,
    )


ERRORS = wire.SdkErrors(
    status=anthropic.APIStatusError,
    timeout=anthropic.APITimeoutError,
    connection=anthropic.APIConnectionError,
    validation=anthropic.APIResponseValidationError,
    status_error=_status_error,
)
