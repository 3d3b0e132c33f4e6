"""OpenAI Chat Completions adapter on ``AsyncOpenAI``: text deltas and one Usage out, ProviderError for
everything else.

The SDK sends the request and raises its typed errors for HTTP error statuses; the SSE body is read
by :func:`web.providers.wire.stream_sse` through this module's chunk handling, because the SDK's
iterator swallows ``data: [DONE]``. A reply is whole once its ``finish_reason`` and the usage chunk
have come: ``[DONE]`` is then only a formality, waited for ``done_grace_s`` (about a second, and
never more than half the idle timeout) before the reply is accepted and the stream closed, so a
proxy or server that holds the stream open costs neither the reply nor the idle timeout. Without
both, a stream that ends is TRUNCATED. Error codes decide the kind: ``insufficient_quota`` will
not heal by waiting, unlike ``rate_limit_exceeded``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import openai
from openai.types.chat import ChatCompletionMessageParam

from web.providers import wire
from web.providers.base import ChatRequest, ErrorKind, ProviderError, StreamItem, Usage
from web.settings import Timeouts

_CODE_KINDS = {
    "insufficient_quota": ErrorKind.QUOTA_EXHAUSTED,
    "rate_limit_exceeded": ErrorKind.RATE_LIMITED,
    "context_length_exceeded": ErrorKind.CONTEXT_TOO_LONG,
    "string_above_max_length": ErrorKind.CONTEXT_TOO_LONG,
    "content_policy_violation": ErrorKind.CONTENT_POLICY,
    "content_filter": ErrorKind.CONTENT_POLICY,
    "invalid_api_key": ErrorKind.AUTH,
    "model_not_found": ErrorKind.NOT_FOUND,
    "server_error": ErrorKind.SERVER_ERROR,
    "overloaded": ErrorKind.OVERLOADED,
}

_TYPE_KINDS = {
    "insufficient_quota": ErrorKind.QUOTA_EXHAUSTED,
    "rate_limit_error": ErrorKind.RATE_LIMITED,
    "requests": ErrorKind.RATE_LIMITED,
    "tokens": ErrorKind.RATE_LIMITED,
    "invalid_request_error": ErrorKind.BAD_REQUEST,
    "authentication_error": ErrorKind.AUTH,
    "permission_error": ErrorKind.AUTH,
    "not_found_error": ErrorKind.NOT_FOUND,
    "server_error": ErrorKind.SERVER_ERROR,
    "api_error": ErrorKind.SERVER_ERROR,
    "overloaded_error": ErrorKind.OVERLOADED,
}


DONE_GRACE_S = 1.0
"""How long a whole reply waits for ``[DONE]``."""


class OpenAIProvider:
    name = "openai"

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None = None,
        timeouts: Timeouts | None = None,
        done_grace_s: float = DONE_GRACE_S,
    ) -> None:
        timeouts = timeouts or Timeouts()
        self._client = openai.AsyncOpenAI(
            api_key=api_key,
            base_url=base_url,
            max_retries=0,
            timeout=wire.http_timeout(timeouts),
            # aiohttp reads a streamed body for a fraction of httpx2's CPU (see wire.py).
            http_client=openai.DefaultAioHttpClient(),
        )
        # Under the chain's idle timeout, which would otherwise end a whole reply as a failure.
        self.done_grace_s = min(done_grace_s, timeouts.idle_s / 2)
        self.base_url = str(self._client.base_url)

    async def aclose(self) -> None:
        await self._client.close()

    def stream(self, request: ChatRequest, model: str) -> AsyncIterator[StreamItem]:
        messages: list[ChatCompletionMessageParam] = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        for m in request.messages:
            if m.role == "user":
                messages.append({"role": "user", "content": m.content})
            else:
                messages.append({"role": "assistant", "content": m.content})
        return wire.stream_sse(
            lambda: self._client.chat.completions.with_streaming_response.create(
                model=model,
                messages=messages,
                max_completion_tokens=request.max_tokens,
                stream=True,
                stream_options={"include_usage": True},
            ),
            _StreamState,
            _ERRORS,
            grace_s=self.done_grace_s,
        )


class _StreamState:
    """What the chunk sequence has shown so far."""

    def __init__(self, request_id: str | None) -> None:
        self.request_id = request_id
        self.done = False
        self.usage_seen = False
        self.finish_reason: str | None = None
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None

    def handle(self, event: wire.ServerEvent) -> str | None:
        """Text to emit, if any. Raises ProviderError for error chunks and malformed data."""
        if event.data == "[DONE]":
            self.done = True
            return None
        if self.done:
            return None
        payload = wire.parse_json(event.data, self.request_id, "chunk")
        if payload.get("error") is not None:
            raise _stream_error(payload["error"], self.request_id)
        usage = payload.get("usage")
        if isinstance(usage, dict):
            self.usage_seen = True
            self.input_tokens = _tokens(usage, "prompt_tokens")
            self.output_tokens = _tokens(usage, "completion_tokens")
        choices = payload.get("choices")
        if not isinstance(choices, list):
            raise wire.malformed("chunk without choices", request_id=self.request_id)
        text = None
        for choice in choices:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            if isinstance(delta, dict):
                content = delta.get("content")
                if content is not None and not isinstance(content, str):
                    raise wire.malformed("delta content is not text", request_id=self.request_id)
                text = content
            reason = choice.get("finish_reason")
            if isinstance(reason, str):
                self.finish_reason = reason
        return text

    @property
    def whole(self) -> bool:
        return self.finish_reason is not None and self.usage_seen

    def finish(self) -> Usage:
        if self.finish_reason is None:
            raise wire.truncated("ended without a finish_reason", request_id=self.request_id)
        if not self.done and not self.whole:
            raise wire.truncated(
                "ended without the usage chunk or data: [DONE]", request_id=self.request_id
            )
        if self.finish_reason == "content_filter":
            raise ProviderError(
                ErrorKind.CONTENT_POLICY,
                "the reply was stopped by the content filter (finish_reason content_filter)",
                request_id=self.request_id,
            )
        return Usage(
            self.input_tokens,
            self.output_tokens,
            self.request_id,
            stop_reason=self.finish_reason,
            hit_length_limit=self.finish_reason == "length",
        )


def _tokens(usage: dict[str, Any], key: str) -> int | None:
    value = usage.get(key)
    return value if isinstance(value, int) else None


def _kind(code: str | None, error_type: str | None, message: str, status: int | None) -> ErrorKind:
    kind = _CODE_KINDS.get(code or "")
    if kind is not None:
        return kind
    if wire.mentions(message, *wire.QUOTA_HINTS):
        return ErrorKind.QUOTA_EXHAUSTED
    if status is not None:
        kind = wire.kind_for_status(status)
    else:
        kind = _TYPE_KINDS.get(error_type or "", ErrorKind.SERVER_ERROR)
    if kind is ErrorKind.BAD_REQUEST:
        if wire.mentions(message, *wire.CONTEXT_HINTS):
            return ErrorKind.CONTEXT_TOO_LONG
        if wire.mentions(message, *wire.POLICY_HINTS):
            return ErrorKind.CONTENT_POLICY
    return kind


def _status_error(exc: openai.APIStatusError) -> ProviderError:
    status = exc.status_code
    body = exc.body if isinstance(exc.body, dict) else {}
    message = body.get("message") if isinstance(body.get("message"), str) else exc.message
    return ProviderError(
        _kind(exc.code, exc.type, str(message), status),
        f"HTTP {status} {exc.code or exc.type or 'error'}: {message}",
        status=status,
        request_id=exc.request_id,
        retry_after=wire.retry_after(exc.response.headers),
    )


def _stream_error(error: object, request_id: str | None) -> ProviderError:
    fields = error if isinstance(error, dict) else {"message": str(error)}
    code = fields.get("code")
    error_type = fields.get("type")
    message = fields.get("message")
    text = message if isinstance(message, str) else "error chunk"
    return ProviderError(
        _kind(
            code if isinstance(code, str) else None,
            error_type if isinstance(error_type, str) else None,
            text,
            None,
        ),
        f"in-stream {code or error_type or 'error'}: {text}",
        request_id=request_id,
    )


_ERRORS = wire.SdkErrors(
    status=openai.APIStatusError,
    timeout=openai.APITimeoutError,
    connection=openai.APIConnectionError,
    validation=openai.APIResponseValidationError,
    status_error=_status_error,
)
