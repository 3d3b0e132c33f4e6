"""Gemini adapter on the official ``google-genai`` SDK: text deltas and one Usage out,
ProviderError for everything else.

Unlike the other two adapters this one reads the SDK's own parsed chunks
(``client.aio.models.generate_content_stream``): Gemini's stream has no terminator beyond the
``finishReason`` of its last chunk, which the SDK hands over intact, so a stream that ends without
one is TRUNCATED. The finish reason then decides: ``STOP`` is a reply, ``MAX_TOKENS`` a reply cut at
the length limit, the safety family (and a blocked prompt) a content-policy refusal, anything else
a failure that moves on.

The SDK is told everything explicitly, so that nothing it would read from the environment
(``GOOGLE_API_KEY`` wins over ``GEMINI_API_KEY`` there, ``GOOGLE_GEMINI_BASE_URL``,
``GOOGLE_GENAI_USE_VERTEXAI``, replay modes) overrides what Settings decided: the key, the Gemini
API rather than Vertex, the base URL, the API version, no replay, no retries (none without
``retry_options``), no automatic function calling and no automatic continuation (which would
send follow-up requests on its own). It gets ``httpx2`` clients of ours, because the SDK sends
every request with one timeout for every phase: our client's request hook puts back the tier's
connect timeout and the chain's read backstop, and its response hook lets this module close the
connection itself when a consumer stops early (the SDK's nested generators would leave that to
the garbage collector). The clients share one TLS context per process: left to itself the SDK
loads the CA bundle three times per client (~0.8 s of CPU on a small machine), for every tier.

Errors are Google's status names (``RESOURCE_EXHAUSTED``, ``UNAVAILABLE``, ...), classified in
:func:`classify`; a retry delay comes from the ``RetryInfo`` detail.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import ssl
from collections.abc import AsyncIterator
from contextvars import ContextVar
from typing import Any

import httpx2
import pydantic
from google import genai
from google.genai import errors, types
from google.genai.client import DebugConfig

from web.providers import wire
from web.providers.base import (
    ChatRequest,
    ErrorKind,
    ProviderError,
    StreamItem,
    TextDelta,
    Usage,
)
from web.settings import Timeouts

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com/"
API_VERSION = "v1beta"

_STATUS_KINDS = {
    "INVALID_ARGUMENT": ErrorKind.BAD_REQUEST,
    "FAILED_PRECONDITION": ErrorKind.BAD_REQUEST,
    "OUT_OF_RANGE": ErrorKind.BAD_REQUEST,
    "UNAUTHENTICATED": ErrorKind.AUTH,
    "PERMISSION_DENIED": ErrorKind.AUTH,
    "NOT_FOUND": ErrorKind.NOT_FOUND,
    "RESOURCE_EXHAUSTED": ErrorKind.RATE_LIMITED,
    "UNAVAILABLE": ErrorKind.OVERLOADED,
    "INTERNAL": ErrorKind.SERVER_ERROR,
    "UNKNOWN": ErrorKind.SERVER_ERROR,
    "ABORTED": ErrorKind.SERVER_ERROR,
    "CANCELLED": ErrorKind.SERVER_ERROR,
    "DEADLINE_EXCEEDED": ErrorKind.TIMEOUT,
}
_AUTH_REASONS = frozenset(
    {"API_KEY_INVALID", "API_KEY_EXPIRED", "API_KEY_SERVICE_BLOCKED", "SERVICE_DISABLED"}
)
"""ErrorInfo reasons that mean the key, whatever the status (Gemini sends a bad key as a 400)."""
_BILLING_HINTS = ("credits are depleted", "prepayment", "billing account", "enable billing")
"""Quota or billing that will not come back by waiting. Not "exceeded your current quota": Gemini
says that of its per-minute limits too, so the quota id decides first (see _quota_exhausted)."""
_REGION_HINTS = ("location is not supported",)
_POLICY_FINISH = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
        "MODEL_ARMOR",
    }
)
_DELAY = re.compile(r"^\s*(\d+(?:\.\d*)?)s\s*$")

_OPENED: ContextVar[list[httpx2.Response] | None] = ContextVar("gemini_opened", default=None)
"""The responses the current stream opened (set by the stream, filled by the response hook: both
run in the task that sends the request)."""


class _NoEnvironmentKeyNotice(logging.Filter):
    """The SDK looks at GOOGLE_API_KEY and GEMINI_API_KEY even when given a key, and warns
    "Both ... are set. Using GOOGLE_API_KEY." It uses neither: ours wins. Drop the untrue line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Both GOOGLE_API_KEY and GEMINI_API_KEY are set")


logging.getLogger("google_genai._api_client").addFilter(_NoEnvironmentKeyNotice())


@functools.cache
def _tls() -> ssl.SSLContext:
    return httpx2.create_ssl_context()


class GeminiProvider:
    name = "gemini"

    def __init__(
        self, *, api_key: str, base_url: str | None = None, timeouts: Timeouts | None = None
    ) -> None:
        timeouts = timeouts or Timeouts()
        http_timeout = wire.http_timeout(timeouts).as_dict()

        async def tier_timeouts(request: httpx2.Request) -> None:
            request.extensions["timeout"] = http_timeout

        async def note_response(response: httpx2.Response) -> None:
            opened = _OPENED.get()
            if opened is not None:
                opened.append(response)

        self._http = httpx2.AsyncClient(
            verify=_tls(),
            timeout=wire.http_timeout(timeouts),
            event_hooks={"request": [tier_timeouts], "response": [note_response]},
        )
        self._unused_sync = httpx2.Client(verify=_tls())  # else the SDK makes one of its own
        self.base_url = base_url or DEFAULT_BASE_URL
        self._client = genai.Client(
            api_key=api_key,
            vertexai=False,
            debug_config=DebugConfig(client_mode=None, replays_directory=None, replay_id=None),
            http_options=types.HttpOptions(
                base_url=self.base_url,
                api_version=API_VERSION,
                # Sent as X-Server-Timeout: the server may give up once the tier's time is over.
                timeout=round(timeouts.total_s * 1000),
                httpx_async_client=self._http,
                httpx_client=self._unused_sync,
                async_client_args={"ssl": _tls()},  # the SDK's websocket context, else made anew
            ),
        )

    async def aclose(self) -> None:
        self._unused_sync.close()
        await self._http.aclose()

    def stream(self, request: ChatRequest, model: str) -> AsyncIterator[StreamItem]:
        contents = [
            types.Content(
                role="user" if m.role == "user" else "model", parts=[types.Part(text=m.content)]
            )
            for m in request.messages
        ]
        config = types.GenerateContentConfig(
            system_instruction=request.system or None,
            max_output_tokens=request.max_tokens,
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
            automatic_continuation=False,
        )
        return self._stream(model, contents, config)

    async def _stream(
        self, model: str, contents: list[types.Content], config: types.GenerateContentConfig
    ) -> AsyncIterator[StreamItem]:
        state = _StreamState()
        opened: list[httpx2.Response] = []
        _OPENED.set(opened)
        chunks: AsyncIterator[types.GenerateContentResponse] | None = None
        try:
            chunks = await self._client.aio.models.generate_content_stream(
                model=model, contents=contents, config=config
            )
            async for chunk in chunks:
                text = state.handle(chunk)
                if text:
                    yield TextDelta(text)
            yield state.finish()
        except ProviderError:
            raise
        except Exception as exc:
            error = normalise(exc, state.request_id)
            if error is None:
                raise
            raise error from exc
        finally:
            _OPENED.set(None)
            for response in opened:  # at once: a consumer that stopped early hangs up now
                await response.aclose()
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()


class _StreamState:
    """What the chunks have shown so far."""

    def __init__(self) -> None:
        self.request_id: str | None = None
        self.finish_reason: str | None = None
        self.finish_message: str | None = None
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None

    def handle(self, chunk: types.GenerateContentResponse) -> str:
        """The chunk's text. Raises ProviderError for a blocked prompt."""
        self.request_id = self.request_id or chunk.response_id
        feedback = chunk.prompt_feedback
        if feedback is not None and feedback.block_reason is not None:
            reason = _name(feedback.block_reason)
            detail = f": {feedback.block_reason_message}" if feedback.block_reason_message else ""
            raise ProviderError(
                ErrorKind.CONTENT_POLICY,
                f"the prompt was blocked (blockReason {reason}){detail}",
                request_id=self.request_id,
            )
        usage = chunk.usage_metadata
        if usage is not None:
            self.input_tokens = usage.prompt_token_count or self.input_tokens
            self.output_tokens = usage.candidates_token_count or self.output_tokens
        if not chunk.candidates:
            return ""
        candidate = chunk.candidates[0]
        if candidate.finish_reason is not None:
            self.finish_reason = _name(candidate.finish_reason)
            self.finish_message = candidate.finish_message
        parts = candidate.content.parts if candidate.content else None
        # Thought summaries are not the reply (they come only when asked for, which we do not).
        return "".join(p.text for p in parts or () if p.text and not p.thought)

    def finish(self) -> Usage:
        reason = self.finish_reason
        if reason is None:
            raise wire.truncated("ended without a finishReason", request_id=self.request_id)
        if reason not in ("STOP", "MAX_TOKENS"):
            detail = f": {self.finish_message}" if self.finish_message else ""
            if reason in _POLICY_FINISH:
                kind, what = ErrorKind.CONTENT_POLICY, "the reply was stopped by the safety filters"
            elif reason == "MALFORMED_RESPONSE":
                kind, what = ErrorKind.MALFORMED, "the model's reply was malformed"
            else:
                kind, what = ErrorKind.SERVER_ERROR, "the model stopped before finishing"
            message = f"{what} (finishReason {reason}){detail}"
            raise ProviderError(kind, message, request_id=self.request_id)
        return Usage(
            self.input_tokens,
            self.output_tokens,
            self.request_id,
            stop_reason=reason,
            hit_length_limit=reason == "MAX_TOKENS",
        )


def _name(value: object) -> str:
    """An SDK enum member (or an unknown value it kept as text) as Gemini's own word."""
    raw = getattr(value, "value", value)
    return str(raw)


def normalise(exc: Exception, request_id: str | None) -> ProviderError | None:
    """The ProviderError for an SDK or transport exception; None for anything else (a bug)."""
    if isinstance(exc, errors.APIError):
        return _api_error(exc, request_id)
    if isinstance(exc, errors.UnknownApiResponseError | json.JSONDecodeError):
        return wire.malformed(f"invalid JSON in chunk: {exc}", request_id=request_id)
    if isinstance(exc, pydantic.ValidationError):
        return wire.malformed(f"chunk of an unexpected shape: {exc}", request_id=request_id)
    if isinstance(exc, httpx2.HTTPError | httpx2.StreamError):
        return wire.transport_error(exc, request_id=request_id)
    return None


def _api_error(exc: errors.APIError, request_id: str | None) -> ProviderError:
    body = exc.details if isinstance(exc.details, dict) else {}
    if isinstance(body.get("error"), dict):
        body = body["error"]
    details = body.get("details")
    details = [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []
    status_name = exc.status if isinstance(exc.status, str) else None
    message = exc.message if isinstance(exc.message, str) else str(exc)
    code = exc.code if isinstance(exc.code, int) else None
    shown = status_name if status_name in _STATUS_KINDS else "error"
    # An HTTP error arrives with the httpx2 response; an error chunk inside a 200 stream with
    # the SDK's wrapper of it.
    http = exc.response if isinstance(exc.response, httpx2.Response) else None
    if http is None:
        return ProviderError(
            classify(status_name, code, message, details),
            f"in-stream {shown}: {message}",
            request_id=request_id,
            retry_after=_retry_delay(details),
        )
    after = _retry_delay(details)
    return ProviderError(
        classify(status_name, code, message, details),
        f"HTTP {http.status_code} {shown}: {message}",
        status=http.status_code,
        request_id=request_id,
        retry_after=after if after is not None else wire.retry_after(http.headers),
    )


def classify(
    status_name: str | None, code: int | None, message: str, details: list[dict[str, Any]]
) -> ErrorKind:
    """The kind of a Gemini error from its status name, HTTP code, message and details."""
    by_code = wire.kind_for_status(code) if code else None
    kind = _STATUS_KINDS.get(status_name or "") or by_code or ErrorKind.SERVER_ERROR
    if kind is ErrorKind.BAD_REQUEST and by_code not in (None, ErrorKind.BAD_REQUEST):
        kind = by_code  # a generic status name on e.g. a 408 or 409
    if _reasons(details) & _AUTH_REASONS:
        return ErrorKind.AUTH
    if kind is ErrorKind.RATE_LIMITED:
        exhausted = _quota_exhausted(message, details)
        return ErrorKind.QUOTA_EXHAUSTED if exhausted else ErrorKind.RATE_LIMITED
    if kind is ErrorKind.BAD_REQUEST:
        if wire.mentions(message, *_REGION_HINTS):
            return ErrorKind.AUTH  # this provider refuses this caller; another one may not
        if wire.mentions(message, *_BILLING_HINTS):
            return ErrorKind.QUOTA_EXHAUSTED
        if wire.mentions(
            message, *wire.CONTEXT_HINTS, "input token count", "maximum number of tokens"
        ):
            return ErrorKind.CONTEXT_TOO_LONG
        if wire.mentions(message, *wire.POLICY_HINTS):
            return ErrorKind.CONTENT_POLICY
    return kind


def _quota_exhausted(message: str, details: list[dict[str, Any]]) -> bool:
    """A RESOURCE_EXHAUSTED that will not heal within minutes: a per-day quota, or billing."""
    quota_ids = [
        f"{v.get('quotaId', '')} {v.get('quotaMetric', '')}".lower()
        for d in details
        if str(d.get("@type", "")).endswith("QuotaFailure")
        for v in d.get("violations") or ()
        if isinstance(v, dict)
    ]
    if any("perday" in q or "per_day" in q for q in quota_ids):
        return True
    if quota_ids:
        return False  # per minute (or another window that heals soon)
    return wire.mentions(message, *_BILLING_HINTS)


def _reasons(details: list[dict[str, Any]]) -> set[str]:
    return {
        str(d.get("reason"))
        for d in details
        if str(d.get("@type", "")).endswith("ErrorInfo") and d.get("reason")
    }


def _retry_delay(details: list[dict[str, Any]]) -> float | None:
    """Seconds from a ``google.rpc.RetryInfo`` detail ("43s", "1.5s"), if there is one."""
    for detail in details:
        if str(detail.get("@type", "")).endswith("RetryInfo"):
            match = _DELAY.match(str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None
