"""Anthropic's Message Batches API on ``AsyncAnthropic``, for the deferral (web.deferral_backends).

One request per batch, its ``custom_id`` the turn id: a result is matched to its turn by that id,
never by position. Failures are the same ProviderError as the streaming adapter's, so the worker
treats "the batch API is overloaded" like any other unavailability.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import anthropic

from web.providers import wire
from web.providers.anthropic_provider import ERRORS, kind_for_error
from web.providers.base import ChatRequest, ErrorKind, ProviderError
from web.settings import Timeouts


@dataclass(frozen=True)
class BatchState:
    batch_id: str
    status: str
    """The batch's ``processing_status``: in_progress, canceling or ended."""

    @property
    def ended(self) -> bool:
        return self.status == "ended"


@dataclass(frozen=True)
class BatchAnswer:
    text: str
    model: str
    input_tokens: int | None
    output_tokens: int | None
    hit_length_limit: bool


@dataclass(frozen=True)
class BatchMiss:
    """The request ended without an answer: errored, canceled or expired (``kind``)."""

    kind: str
    """"errored", "canceled", "expired", or "missing" (no result with our custom_id)."""
    error: ProviderError | None = None
    """For "errored": the error as the API reported it."""


BatchResult = BatchAnswer | BatchMiss


class AnthropicBatches:
    def __init__(self, *, api_key: str, base_url: str | None = None) -> None:
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key,
            base_url=base_url,
            max_retries=0,
            timeout=wire.http_timeout(Timeouts(connect_s=5.0, idle_s=30.0, total_s=60.0)),
        )

    async def aclose(self) -> None:
        await self._client.close()

    async def submit(self, custom_id: str, request: ChatRequest, model: str) -> BatchState:
        params: dict[str, Any] = {
            "model": model,
            "max_tokens": request.max_tokens,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        }
        if request.system:
            params["system"] = request.system
        batch = await self._call(
            self._client.messages.batches.create(
                requests=[{"custom_id": custom_id, "params": params}]  # type: ignore[typeddict-item]
            )
        )
        return BatchState(batch.id, batch.processing_status)

    async def retrieve(self, batch_id: str) -> BatchState:
        batch = await self._call(self._client.messages.batches.retrieve(batch_id))
        return BatchState(batch.id, batch.processing_status)

    async def cancel(self, batch_id: str) -> BatchState:
        batch = await self._call(self._client.messages.batches.cancel(batch_id))
        return BatchState(batch.id, batch.processing_status)

    async def result(self, batch_id: str, custom_id: str) -> BatchResult:
        """The result for ``custom_id`` in an ended batch."""
        try:
            async for line in await self._client.messages.batches.results(batch_id):
                if line.custom_id != custom_id:
                    continue
                return _result(line.result)
        except ProviderError:
            raise
        except Exception as exc:
            raise _normalised(exc) from exc
        return BatchMiss("missing")

    async def _call(self, call: Any) -> Any:
        try:
            return await call
        except Exception as exc:
            raise _normalised(exc) from exc


def _normalised(exc: Exception) -> Exception:
    error = wire.normalise(exc, None, ERRORS)
    if error is None and isinstance(exc, anthropic.AnthropicError):
        # e.g. "results are not ready": the SDK's own refusal, not a transport failure.
        return ProviderError(ErrorKind.SERVER_ERROR, str(exc))
    return error if error is not None else exc


def _result(result: Any) -> BatchResult:
    if result.type == "succeeded":
        message = result.message
        text = "".join(b.text for b in message.content if getattr(b, "type", "") == "text")
        usage = message.usage
        return BatchAnswer(
            text=text,
            model=message.model,
            input_tokens=getattr(usage, "input_tokens", None),
            output_tokens=getattr(usage, "output_tokens", None),
            hit_length_limit=message.stop_reason == "max_tokens",
        )
    if result.type == "errored":
        inner = getattr(result.error, "error", None)
        error_type = getattr(inner, "type", None)
        message = getattr(inner, "message", None) or "errored"
        kind = kind_for_error(error_type, message, None)
        return BatchMiss("errored", ProviderError(kind, f"batch {error_type}: {message}"))
    return BatchMiss(str(result.type))
