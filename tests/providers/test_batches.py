"""The simulator's Message Batches API as the official anthropic SDK sees it, over loopback.

The batch ends on the simulator's injected clock, so these tests step it instead of sleeping.
Every object is also re-validated strictly against the SDK's own types (the SDK itself builds
responses without validation, so a wrong field type would otherwise slip through).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

import anthropic
import pytest
from anthropic.types import Message
from anthropic.types.messages import (
    MessageBatch,
    MessageBatchErroredResult,
    MessageBatchIndividualResponse,
    MessageBatchSucceededResult,
)
from sim.clock import FakeClock
from sim.conftest import bounded  # an upper bound on a test's time, never a wait

from web.sim.replies import reply_text
from web.sim.server import ModelProfile, SimServer

SONNET = "claude-sonnet-4-6"
PROFILE = ModelProfile(
    first_token_s=0.0,
    tokens_per_s=5000.0,
    reply_tokens=30,
    context_window=10_000,
    batch_delay_s=60.0,
)
PROMPTS = {"turn-1": "What is an understudy?", "turn-2": "And a fallback chain?"}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def sim(clock: FakeClock) -> AsyncIterator[SimServer]:
    server = SimServer(default_profile=PROFILE, profiles={}, clock=clock)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def client(sim: SimServer) -> AsyncIterator[anthropic.AsyncAnthropic]:
    sdk = anthropic.AsyncAnthropic(
        base_url=f"{sim.url}/anthropic", api_key="test-key", max_retries=0, timeout=5
    )
    yield sdk
    await sdk.close()


def requests() -> list[dict[str, object]]:
    return [
        {
            "custom_id": custom_id,
            "params": {
                "model": SONNET,
                "max_tokens": 500,
                "system": "Be brief.",
                "messages": [{"role": "user", "content": prompt}],
            },
        }
        for custom_id, prompt in PROMPTS.items()
    ]


async def all_results(
    client: anthropic.AsyncAnthropic, batch_id: str
) -> dict[str, MessageBatchIndividualResponse]:
    got = {}
    async for line in await client.messages.batches.results(batch_id):
        MessageBatchIndividualResponse.model_validate(line.model_dump())
        got[line.custom_id] = line
    return got


def checked(batch: MessageBatch) -> MessageBatch:
    return MessageBatch.model_validate(batch.model_dump())


@bounded(20)
async def test_create_retrieve_and_results_after_the_clock_passes_batch_delay_s(
    client: anthropic.AsyncAnthropic, clock: FakeClock
) -> None:
    batch = checked(await client.messages.batches.create(requests=requests()))  # type: ignore[arg-type]
    assert batch.processing_status == "in_progress"
    assert batch.request_counts.processing == 2
    assert isinstance(batch.created_at, datetime)
    with pytest.raises(anthropic.AnthropicError, match=r"finished processing\? in_progress"):
        await client.messages.batches.results(batch.id)

    clock.advance(59)
    assert (await client.messages.batches.retrieve(batch.id)).processing_status == "in_progress"
    clock.advance(1)
    ended = checked(await client.messages.batches.retrieve(batch.id))
    assert ended.processing_status == "ended"
    assert ended.request_counts.succeeded == 2
    assert ended.ended_at is not None and (ended.ended_at - batch.created_at).total_seconds() == 60

    got = await all_results(client, batch.id)
    assert set(got) == set(PROMPTS)
    for custom_id, prompt in PROMPTS.items():
        result = got[custom_id].result
        assert isinstance(result, MessageBatchSucceededResult)
        assert isinstance(result.message, Message)
        assert result.message.model == SONNET
        assert result.message.content[0].type == "text"
        assert result.message.content[0].text == reply_text(SONNET, prompt, PROFILE.reply_tokens)

    listed = [b.id async for b in client.messages.batches.list(limit=1)]
    assert listed == [batch.id]


@bounded(20)
async def test_cancel_gives_canceled_results(client: anthropic.AsyncAnthropic) -> None:
    batch = await client.messages.batches.create(requests=requests())  # type: ignore[arg-type]
    canceling = checked(await client.messages.batches.cancel(batch.id))
    assert canceling.processing_status == "canceling"
    assert canceling.cancel_initiated_at is not None
    ended = checked(await client.messages.batches.retrieve(batch.id))
    assert (ended.processing_status, ended.request_counts.canceled) == ("ended", 2)
    got = await all_results(client, batch.id)
    assert {line.result.type for line in got.values()} == {"canceled"}


@bounded(20)
async def test_errored_results_under_the_batch_errored_fault(
    sim: SimServer, client: anthropic.AsyncAnthropic, clock: FakeClock
) -> None:
    sim.registry.add({"model": SONNET, "kind": "batch_errored", "count": 1})
    batch = await client.messages.batches.create(requests=requests())  # type: ignore[arg-type]
    clock.advance(PROFILE.batch_delay_s)
    ended = checked(await client.messages.batches.retrieve(batch.id))
    assert (ended.request_counts.errored, ended.request_counts.succeeded) == (1, 1)
    got = await all_results(client, batch.id)
    errored = got["turn-1"].result
    assert isinstance(errored, MessageBatchErroredResult)
    assert errored.error.error.type == "overloaded_error"
    assert got["turn-2"].result.type == "succeeded"


@bounded(20)
async def test_a_batches_status_fault_raises_the_sdks_error_and_messages_still_work(
    sim: SimServer, client: anthropic.AsyncAnthropic
) -> None:
    sim.registry.add({"model": SONNET, "kind": "status", "status": 529, "api": "batches"})
    with pytest.raises(anthropic.InternalServerError) as caught:
        await client.messages.batches.create(requests=requests())  # type: ignore[arg-type]
    assert caught.value.status_code == 529
    message = await client.messages.create(
        model=SONNET, max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    )
    assert message.content[0].type == "text"
