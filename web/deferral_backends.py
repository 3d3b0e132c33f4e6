"""Where a queued turn's request goes (the ``backend`` of the chain file's [deferral] table).

Each backend answers one question per look, as a :class:`Step`: submitted, still pending, an
answer, or a miss (to submit again later, or ``final``: it would fail again, so the turn fails).
The worker (web.deferral_worker) decides what to do with it and writes it.

- :class:`BatchBackend`: the Anthropic Message Batches API; one batch per job, its request's
  ``custom_id`` the turn id. An errored, expired or canceled result is a miss to resubmit.
- :class:`RetryBackend`: the synchronous chain run again (no text is streamed to a page: the
  reply lands whole); its tries are logged as the turn's attempts.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Protocol

from web.db.deferred import JobRow
from web.deferral import CONFIG_ERRORS, NEVER_QUEUED, Deferral
from web.events import AttemptRecord, Completed, Exhausted, TierInfo
from web.providers.anthropic_batches import AnthropicBatches, BatchAnswer
from web.providers.base import ChatRequest, ErrorKind, ProviderError
from web.runner import TurnSource


@dataclass(frozen=True)
class Submitted:
    batch_id: str


@dataclass(frozen=True)
class Pending:
    status: str
    """What the backend said ("in_progress", "canceling"), or why it could not be asked."""
    error: ProviderError | None = None


@dataclass(frozen=True)
class Answer:
    text: str
    tier: TierInfo
    """Who answered: the deferral's own tier for batches; the chain's tier for a retry."""
    model: str
    input_tokens: int | None
    output_tokens: int | None
    hit_length_limit: bool
    attempts: tuple[AttemptRecord, ...] = ()


@dataclass(frozen=True)
class Miss:
    error: str
    kind: ErrorKind | None
    final: bool
    """It would fail again: the turn fails now instead of being resubmitted."""
    attempts: tuple[AttemptRecord, ...] = field(default=())


Step = Submitted | Pending | Answer | Miss


class Backend(Protocol):
    async def submit(self, job: JobRow, request: ChatRequest) -> Step: ...

    async def poll(self, job: JobRow) -> Step: ...

    async def cancel(self, job: JobRow) -> None: ...

    async def aclose(self) -> None: ...


def _permanent(kind: ErrorKind) -> bool:
    return kind in NEVER_QUEUED or kind in CONFIG_ERRORS


def _miss(error: ProviderError) -> Miss:
    return Miss(error.message, error.kind, final=_permanent(error.kind))


class BatchBackend:
    def __init__(self, deferral: Deferral, batches: AnthropicBatches) -> None:
        assert deferral.config.model is not None
        self._deferral = deferral
        self._model = deferral.config.model
        self._batches = batches

    async def aclose(self) -> None:
        await self._batches.aclose()

    async def submit(self, job: JobRow, request: ChatRequest) -> Step:
        try:
            batch = await self._batches.submit(job.turn_id, request, self._model)
        except ProviderError as exc:
            return _miss(exc)
        return Submitted(batch.batch_id)

    async def poll(self, job: JobRow) -> Step:
        assert job.batch_id is not None
        try:
            batch = await self._batches.retrieve(job.batch_id)
            if not batch.ended:
                return Pending(batch.status)
            result = await self._batches.result(job.batch_id, job.turn_id)
        except ProviderError as exc:
            if exc.kind is ErrorKind.NOT_FOUND:  # the batch is gone (deleted): send it again
                return Miss(f"batch {job.batch_id} not found", exc.kind, final=False)
            return Pending("unreachable", exc)
        if isinstance(result, BatchAnswer):
            return Answer(
                text=result.text,
                tier=self._deferral.info,
                model=result.model,
                input_tokens=result.input_tokens,
                output_tokens=result.output_tokens,
                hit_length_limit=result.hit_length_limit,
            )
        if result.error is not None:
            return _miss(result.error)
        return Miss(f"the batch request {result.kind}", None, final=False)

    async def cancel(self, job: JobRow) -> None:
        if job.batch_id is not None:
            with contextlib.suppress(ProviderError):
                await self._batches.cancel(job.batch_id)


class RetryBackend:
    def __init__(self, deferral: Deferral, chain: TurnSource) -> None:
        self._deferral = deferral
        self._chain = chain

    async def aclose(self) -> None:
        return None

    async def submit(self, job: JobRow, request: ChatRequest) -> Step:
        records: list[AttemptRecord] = []
        end: Completed | Exhausted | None = None
        events = self._chain.run(request, on_attempt=records.append)
        async with contextlib.aclosing(events):
            async for event in events:
                if isinstance(event, Completed | Exhausted):
                    end = event
        if isinstance(end, Completed):
            return Answer(
                text=end.text,
                tier=end.tier,
                model=end.tier.model,
                input_tokens=end.input_tokens,
                output_tokens=end.output_tokens,
                hit_length_limit=end.hit_length_limit,
                attempts=tuple(records),
            )
        message = end.message if end is not None else "the chain ended without an answer"
        kind = end.final_kind if end is not None else None
        return Miss(
            message, kind, final=not self._deferral.accepts(records), attempts=tuple(records)
        )

    async def poll(self, job: JobRow) -> Step:
        return Miss("a retry job has nothing to poll", None, final=False)

    async def cancel(self, job: JobRow) -> None:
        return None


def backend_for(deferral: Deferral, chain: TurnSource, batches: AnthropicBatches | None) -> Backend:
    if batches is not None:
        return BatchBackend(deferral, batches)
    return RetryBackend(deferral, chain)
