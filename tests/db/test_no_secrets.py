"""No API key reaches a table or a log line, with a recognisable fake key through the real chain.

The simulator answers the primary with a 401 whose message quotes the key (as real providers do,
more or less masked); the chain moves to the tier with another key, and the turn is logged.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import pytest
from sqlalchemy import MetaData, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from web.chain import Chain
from web.db.turnlog import record_outcome
from web.events import AttemptRecord, Completed, Exhausted
from web.outcome import answered
from web.providers.base import ChatMessage, ChatRequest
from web.settings import Settings
from web.sim.server import SimServer
from web.status import AttemptOutcome

from support.database import BACKENDS, add_user_message, start_turn

Factory = async_sessionmaker[AsyncSession]
ANTHROPIC_KEY = "sk-ant-TESTKEY-9c1f4e2b7a5d8c3e-anthropic"
OPENAI_KEY = "sk-proj-TESTKEY-9c1f4e2b7a5d8c3e-openai"
MARKERS = ("TESTKEY", "9c1f4e2b7a5d8c3e")


async def dump(factory: Factory) -> str:
    """Every row of every table, as text."""
    metadata = MetaData()
    async with factory() as session:
        conn = await session.connection()
        await conn.run_sync(metadata.reflect)
        parts = []
        for table in metadata.tables.values():
            for row in await session.execute(select(table)):
                parts.append(repr(tuple(row)))
    return "\n".join(parts)


@BACKENDS
async def test_a_fake_key_reaches_no_table_and_no_log_line(
    factory: Factory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with SimServer() as sim:
        sim.set_profile("*", first_token_s=0.0, tokens_per_s=2000.0, reply_tokens=20)
        sim.registry.add(
            {
                "model": "claude-sonnet-4-6",
                "kind": "status",
                "status": 401,
                "message": f"invalid x-api-key: {ANTHROPIC_KEY}",
            }
        )
        settings = Settings.from_env(
            {
                "UNDERSTUDY_DATA_DIR": str(tmp_path),
                "UNDERSTUDY_SIM_URL": sim.url,
                "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
                "OPENAI_API_KEY": OPENAI_KEY,
            }
        )
        assert settings.api_keys == {
            "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
            "OPENAI_API_KEY": OPENAI_KEY,
        }
        chain = Chain.from_settings(settings)
        conversation_id, message_id = await add_user_message(factory, "Say hello")
        turn_id, _ = await start_turn(
            factory, conversation_id=conversation_id, user_message_id=message_id
        )
        end: Completed | Exhausted | None = None
        records: list[AttemptRecord] = []
        try:
            request = ChatRequest((ChatMessage("user", "Say hello"),))
            run = chain.run(request, on_attempt=records.append)
            async with contextlib.aclosing(run) as events:
                async for event in events:
                    if isinstance(event, Completed | Exhausted):
                        end = event
        finally:
            await chain.aclose()

    assert isinstance(end, Completed), end
    assert end.tier.name == "openai"  # 401 on the Anthropic key skips haiku (same key)
    failures = [r for r in records if r.outcome is AttemptOutcome.FAILED]
    assert [(r.tier.name, r.status) for r in failures] == [("sonnet", 401)]
    # The simulator quoted the key back, so this test proves something; it was scrubbed at once.
    assert "invalid x-api-key: [redacted key]" in (failures[0].error_message or "")
    await record_outcome(factory, turn_id, answered(end, records))

    tables = await dump(factory)
    assert turn_id in tables and "auth" in tables and "401" in tables
    for marker in MARKERS:
        assert marker not in tables
        assert marker not in caplog.text
