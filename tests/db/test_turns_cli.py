from __future__ import annotations

import asyncio
import json
from pathlib import Path

from click.testing import CliRunner

from web.cli import main
from web.db.migrate import upgrade_database
from web.db.session import make_engine, make_sessionmaker
from web.db.turnlog import record_outcome
from web.providers.base import ErrorKind
from web.wording import degraded_reason

from support.database import add_user_message, start_turn
from support.outcomes import HAIKU, SONNET, answer, failed, no_answer, ok


async def _fill(url: str) -> None:
    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    try:
        for prompt, outcome in [
            ("first question", "ok"),
            ("second question", "haiku"),
            ("third question", "failed"),
        ]:
            conversation_id, message_id = await add_user_message(factory, prompt)
            turn_id, _ = await start_turn(
                factory, conversation_id=conversation_id, user_message_id=message_id
            )
            overloaded = failed(SONNET, 1, ErrorKind.OVERLOADED, 529, elapsed=0.12)
            if outcome == "ok":
                records = (ok(SONNET, 1, ttft=0.2, elapsed=0.4),)
                done = answer(SONNET, "An answer", records, ttft=0.2, total=0.4, tokens=(5, 7))
                await record_outcome(factory, turn_id, done)
            elif outcome == "haiku":
                records = (overloaded, ok(HAIKU, 2, ttft=0.3, elapsed=1.5))
                done = answer(HAIKU, "A fast answer", records, ttft=0.45, total=1.7, tokens=(5, 7))
                await record_outcome(factory, turn_id, done)
            else:
                gone = no_answer("No model could answer right now.", (overloaded,), total=0.2)
                await record_outcome(factory, turn_id, gone)
    finally:
        await engine.dispose()


def _env(tmp_path: Path) -> dict[str, str]:
    return {"UNDERSTUDY_DATA_DIR": str(tmp_path), "UNDERSTUDY_DATABASE_URL": ""}


def test_turns_lists_recent_turns_newest_last(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'understudy.db'}"
    upgrade_database(url)
    asyncio.run(_fill(url))

    result = CliRunner().invoke(main, ["turns"], env=_env(tmp_path))
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.index("first question") < out.index("second question") < out.index("third")
    assert "degraded  haiku (claude-haiku-4-5-20251001)" in out
    reason = degraded_reason(HAIKU, [failed(SONNET, 1, ErrorKind.OVERLOADED, 529)])
    assert f"why:      {reason}" in out
    assert "1 sonnet overloaded 529 (120 ms) | 2 haiku ok (1.50 s)" in out
    assert "error:    No model could answer right now." in out

    result = CliRunner().invoke(main, ["turns", "--degraded", "-n", "1"], env=_env(tmp_path))
    assert "third question" in result.output and "second question" not in result.output


def test_turns_json(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'understudy.db'}"
    upgrade_database(url)
    asyncio.run(_fill(url))

    result = CliRunner().invoke(main, ["turns", "--json", "--degraded"], env=_env(tmp_path))
    assert result.exit_code == 0, result.output
    turns = [json.loads(line) for line in result.output.splitlines()]
    assert [(t["status"], t["tier"]) for t in turns] == [("degraded", "haiku"), ("failed", None)]
    haiku = turns[0]
    assert haiku["prompt"] == "second question" and haiku["reply"] == "A fast answer"
    assert (haiku["ttft_ms"], haiku["total_ms"], haiku["output_tokens"]) == (450.0, 1700.0, 7)
    assert [
        (a["tier"], a["outcome"], a["error_kind"], a["http_status"]) for a in haiku["attempts"]
    ] == [
        ("sonnet", "failed", "overloaded", 529),
        ("haiku", "ok", None, None),
    ]


def test_turns_without_a_database_says_how_to_make_one(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["turns"], env=_env(tmp_path))
    assert result.exit_code == 1
    assert "has no turn log yet" in result.output and "understudy db upgrade" in result.output
    assert not (tmp_path / "understudy.db").exists()
