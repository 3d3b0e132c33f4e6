"""SIGTERM while a reply streams: the server exits cleanly and records the turn as interrupted."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from web.sim.replies import reply_text

from support.chat import ChatClient

if TYPE_CHECKING:
    from tests.conftest import LiveApp

SONNET = "claude-sonnet-4-6"


def test_stopping_the_server_records_running_turns_as_interrupted(
    client: ChatClient, live_app: LiveApp
) -> None:
    live_app.set_profile(SONNET, tokens_per_s=20.0, reply_tokens=200)
    conversation = client.new_conversation("long answer")
    turn = client.last_turn(conversation)
    client.stream(conversation, turn, limit=4)
    client.close()

    # uvicorn shuts down gracefully, then re-raises SIGTERM so the parent sees how it ended.
    assert live_app.stop() in (0, -15)
    assert "Application shutdown complete" in live_app.log()

    db = sqlite3.connect(live_app.data_dir / "understudy.db")
    try:
        status, error = db.execute(
            "SELECT status, error_message FROM turns WHERE id = ?", (turn,)
        ).fetchone()
        (text,) = db.execute(
            "SELECT content FROM messages WHERE turn_id = ? AND role = 'assistant'", (turn,)
        ).fetchone()
    finally:
        db.close()
    assert status == "interrupted"
    assert "server stopped" in error
    expected = reply_text(SONNET, "long answer", 200)
    assert text and expected.startswith(text) and text != expected
