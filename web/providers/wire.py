"""What the provider adapters share: the streaming loop (:func:`stream_sse`, Anthropic and OpenAI),
a byte-level SSE reader, the SDK-exception ladder (:func:`normalise`) and error classification
helpers (Gemini's too). Each adapter keeps only its own event handling (a :class:`StreamState`)
and its error-kind mapping.

The adapters let the official SDK build, authenticate and send the request (and turn HTTP error
statuses into its typed errors) over the SDK's own aiohttp transport (``DefaultAioHttpClient``:
reading a streamed body through httpx2 on anyio cost more CPU per token than everything else the
app does), then read the streamed body themselves: that is the only way to
see the terminating event itself (OpenAI's ``[DONE]`` never reaches the SDK's iterator), and it
keeps every mid-stream failure in one place (raw ``httpx2`` exceptions, invalid JSON, in-stream
error events).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import httpx2

from web.providers.base import ErrorKind, ProviderError, StreamItem, TextDelta, Usage
from web.settings import Timeouts

DRAIN_S = 0.1
"""After the terminator, how long to wait for the end of the body (so the connection is reused)."""


@dataclass(frozen=True, slots=True)
class ServerEvent:
    event: str | None
    data: str


class SSEReader:
    """Incremental Server-Sent Events parser: feed it bytes, get complete events back.

    Lines are split on LF (CRLF tolerated) at the byte level, so text containing other Unicode
    line separators is never split. A line that is not UTF-8 raises ``UnicodeDecodeError``.
    """

    __slots__ = ("_buffer", "_data", "_event")

    def __init__(self) -> None:
        self._buffer = b""
        self._event: str | None = None
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[ServerEvent]:
        lines = (self._buffer + chunk).split(b"\n")
        self._buffer = lines.pop()
        events: list[ServerEvent] = []
        for raw in lines:
            self._line(raw, events)
        return events

    def flush(self) -> list[ServerEvent]:
        """At the end of the body: the last line and event, even without their blank line."""
        events: list[ServerEvent] = []
        if self._buffer:
            self._line(self._buffer, events)
            self._buffer = b""
        self._line(b"", events)
        return events

    def _line(self, raw: bytes, events: list[ServerEvent]) -> None:
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if not raw:
            if self._data:
                events.append(ServerEvent(self._event, "\n".join(self._data)))
            self._event = None
            self._data = []
            return
        name, _, value = raw.decode("utf-8").partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        # "id", "retry" and ":comment" lines carry nothing we use.


def http_timeout(timeouts: Timeouts) -> httpx2.Timeout:
    """Connect from the tier; read as a backstop only: the chain enforces first-token and idle."""
    backstop = max(timeouts.first_token_s, timeouts.idle_s)
    return httpx2.Timeout(backstop, connect=timeouts.connect_s)


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    if not headers:
        return None
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def kind_for_status(status: int) -> ErrorKind:
    """The meaning of an HTTP error status when the body says nothing more specific."""
    if status in (401, 403):
        return ErrorKind.AUTH
    if status == 404:
        return ErrorKind.NOT_FOUND
    if status == 429:
        return ErrorKind.RATE_LIMITED
    if status == 529:
        return ErrorKind.OVERLOADED
    if status >= 500 or status in (408, 409):
        return ErrorKind.SERVER_ERROR
    return ErrorKind.BAD_REQUEST


def transport_error(exc: Exception, *, request_id: str | None = None) -> ProviderError:
    """A raw ``httpx2`` failure (the SDKs do not wrap errors raised while reading a body)."""
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx2.TimeoutException) and not _not_a_timeout(exc):
        return ProviderError(ErrorKind.TIMEOUT, f"timed out: {detail}", request_id=request_id)
    return ProviderError(
        ErrorKind.CONNECTION, f"connection failed: {detail}", request_id=request_id
    )


def malformed(detail: str, *, request_id: str | None = None) -> ProviderError:
    return ProviderError(ErrorKind.MALFORMED, f"malformed stream: {detail}", request_id=request_id)


def truncated(detail: str, *, request_id: str | None = None) -> ProviderError:
    return ProviderError(ErrorKind.TRUNCATED, f"stream truncated: {detail}", request_id=request_id)


def mentions(text: str, *needles: str) -> bool:
    lowered = text.lower()
    return any(needle in lowered for needle in needles)


CONTEXT_HINTS = ("prompt is too long", "context length", "context window", "too many tokens")
POLICY_HINTS = ("content policy", "content filter", "content_policy", "safety system")
QUOTA_HINTS = ("insufficient_quota", "exceeded your current quota", "credit balance")


class SdkResponse(Protocol):
    """What both SDKs' ``with_streaming_response`` objects offer and the reader needs."""

    @property
    def request_id(self) -> str | None: ...

    @property
    def http_response(self) -> httpx2.Response: ...


class StreamState(Protocol):
    """One provider's reading of its own event sequence."""

    @property
    def done(self) -> bool:
        """The terminating event was seen: stop reading (the rest of the body is drained)."""
        ...

    @property
    def whole(self) -> bool:
        """Everything the reply needs has come and only the terminator itself is missing (OpenAI:
        finish_reason and usage). Always False for a format whose terminator is required."""
        ...

    def handle(self, event: ServerEvent) -> str | None:
        """Text to emit, if any. Raises ProviderError for error events and malformed data."""
        ...

    def finish(self) -> Usage:
        """At the end of the body: the Usage, or ProviderError if the stream was not complete."""
        ...


@dataclass(frozen=True, slots=True)
class SdkErrors:
    """One SDK's exception classes, and how its HTTP status errors become ProviderError."""

    status: type[Exception]
    timeout: type[Exception]
    """Checked before ``connection``: in both SDKs a timeout is a kind of connection error."""
    connection: type[Exception]
    validation: type[Exception]
    status_error: Callable[[Any], ProviderError]


async def stream_sse(
    open_response: Callable[[], AbstractAsyncContextManager[SdkResponse]],
    new_state: Callable[[str | None], StreamState],
    errors: SdkErrors,
    *,
    grace_s: float | None = None,
) -> AsyncIterator[StreamItem]:
    """Send the request (``open_response``), read its SSE body through the provider's state, and
    turn every failure into ProviderError. One generator layer, driven directly by the chain.

    ``grace_s``: once the state is ``whole``, how long to wait for the terminator before taking
    the reply as it is (a silence, a dropped connection or a clean end then all accept it: the
    reply was delivered, and must neither be thrown away nor wait for the idle timeout)."""
    request_id: str | None = None
    try:
        async with open_response() as response:
            request_id = response.request_id
            state = new_state(request_id)
            reader = SSEReader()
            chunks = response.http_response.aiter_bytes()
            while True:
                waiting = grace_s is not None and state.whole
                try:
                    if waiting:
                        async with asyncio.timeout(grace_s):
                            chunk = await anext(chunks)
                    else:
                        chunk = await anext(chunks)
                except StopAsyncIteration:
                    for event in reader.flush():
                        text = state.handle(event)
                        if text:
                            yield TextDelta(text)
                    break
                except (TimeoutError, httpx2.HTTPError, httpx2.StreamError):
                    if not waiting:
                        raise
                    break  # the response closes its connection as the block exits
                for event in reader.feed(chunk):
                    text = state.handle(event)
                    if text:
                        yield TextDelta(text)
                if state.done:
                    await drain(chunks)
                    break
            yield state.finish()
    except ProviderError:
        raise
    except Exception as exc:
        error = normalise(exc, request_id, errors)
        if error is None:
            raise
        raise error from exc


def normalise(exc: Exception, request_id: str | None, errors: SdkErrors) -> ProviderError | None:
    """The ProviderError for an SDK or transport exception; None for anything else (a bug)."""
    if isinstance(exc, errors.status):
        return errors.status_error(exc)
    if isinstance(exc, errors.timeout) and not _not_a_timeout(exc):
        return ProviderError(ErrorKind.TIMEOUT, f"timed out: {_sdk_message(exc)}")
    if isinstance(exc, errors.connection):
        return ProviderError(ErrorKind.CONNECTION, f"connection failed: {_sdk_message(exc)}")
    if isinstance(exc, errors.validation):
        return malformed(_sdk_message(exc), request_id=request_id)
    if isinstance(exc, httpx2.HTTPError | httpx2.StreamError):
        return transport_error(exc, request_id=request_id)
    if isinstance(exc, UnicodeDecodeError):
        return malformed(f"not UTF-8: {exc}", request_id=request_id)
    return None


def _not_a_timeout(exc: BaseException) -> bool:
    """A "timeout" caused by an aiohttp connection failure that is no timeout (a refused or
    dropped connection): the openai SDK's copy of the aiohttp transport maps every
    ``ClientConnectionError`` to ``ConnectTimeout``, which would skip the same-tier retry a
    connection error gets."""
    cause = exc.__cause__
    while cause is not None:
        if isinstance(cause, aiohttp.ClientConnectionError):
            return not isinstance(cause, TimeoutError)
        cause = cause.__cause__
    return False


def _sdk_message(exc: Exception) -> str:
    message = getattr(exc, "message", None)
    return message if isinstance(message, str) else str(exc)


async def drain(chunks: AsyncIterator[bytes]) -> None:
    """Read the end of the body briefly, so the connection goes back to the pool."""
    try:
        async with asyncio.timeout(DRAIN_S):
            async for _ in chunks:
                pass
    except (TimeoutError, httpx2.HTTPError, httpx2.StreamError):
        pass


def parse_json(data: str, request_id: str | None, noun: str) -> dict[str, Any]:
    """An event's data as a JSON object; MALFORMED otherwise. ``noun`` names it in the message."""
    try:
        payload = json.loads(data)
    except json.JSONDecodeError as exc:
        raise malformed(f"invalid JSON in {noun}: {exc}", request_id=request_id) from exc
    if not isinstance(payload, dict):
        raise malformed(f"{noun} is not an object", request_id=request_id)
    return payload
