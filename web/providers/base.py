"""The one streaming method every provider implements, and the one error type it raises.

A provider turns neutral messages into text deltas and a final usage figure, and turns every failure
into :class:`ProviderError`. It does no retries, no timing and no logging: the chain owns those.

    ProviderError(kind=...)
      RATE_LIMITED       429 (rate_limit_error / rate_limit_exceeded)
      QUOTA_EXHAUSTED    429 insufficient_quota: will not heal by waiting
      OVERLOADED         529 / overloaded_error (also in-stream)
      SERVER_ERROR       other 5xx, 408, 409, other in-stream error events
      TIMEOUT            connect, first-token or idle timeout
      CONNECTION         refused, reset, dropped mid-stream
      TRUNCATED          the stream ended without its terminator
      MALFORMED          an event that is not valid JSON / not the expected shape
      BAD_REQUEST        400 invalid request: fails everywhere
      CONTEXT_TOO_LONG   the prompt does not fit the model's window
      CONTENT_POLICY     refused by the provider's content filter
      AUTH               401 / 403
      NOT_FOUND          404 unknown model: a configuration error
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, Protocol

from web.redact import redact


class ErrorKind(StrEnum):
    RATE_LIMITED = "rate_limited"
    QUOTA_EXHAUSTED = "quota_exhausted"
    OVERLOADED = "overloaded"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    TRUNCATED = "truncated"
    MALFORMED = "malformed"
    BAD_REQUEST = "bad_request"
    CONTEXT_TOO_LONG = "context_too_long"
    CONTENT_POLICY = "content_policy"
    AUTH = "auth"
    NOT_FOUND = "not_found"


class ProviderError(Exception):
    """Every provider failure, normalised. ``str(err)`` is a short human description."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        message = redact(message)  # providers quote keys back in some errors
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.request_id = request_id
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return (
            f"ProviderError({self.kind.value!r}, {self.message!r}, status={self.status}, "
            f"request_id={self.request_id!r}, retry_after={self.retry_after})"
        )


@dataclass(frozen=True)
class ChatMessage:
    role: Literal["user", "assistant"]
    content: str


@dataclass(frozen=True)
class ChatRequest:
    messages: tuple[ChatMessage, ...]
    system: str | None = None
    max_tokens: int = 1024
    """The reply's length limit. The chain replaces it with each tier's ``max_output_tokens``."""


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class Usage:
    input_tokens: int | None
    output_tokens: int | None
    request_id: str | None = None
    stop_reason: str | None = None
    """The provider's own word for why the reply ended ("end_turn", "stop", "max_tokens", ...)."""
    hit_length_limit: bool = False
    """True when the reply stopped because it reached ``ChatRequest.max_tokens``: it is cut."""


StreamItem = TextDelta | Usage


class Provider(Protocol):
    """One streaming call. Yields TextDelta items, then exactly one Usage as the last item.

    Raises ProviderError for every failure, including a stream that ends without its terminator.
    Per-token timeouts (first token, idle) are enforced by the chain, not here; the provider's SDK
    client is built with max_retries=0 and the connect timeout.
    """

    name: str

    def stream(self, request: ChatRequest, model: str) -> AsyncIterator[StreamItem]: ...

    async def aclose(self) -> None: ...
