"""The turn log through the real app: `understudy serve` in a subprocess, faults set through the
simulator, messages posted the way the browser posts them, then the database inspected."""

from __future__ import annotations

import itertools
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

# The suite's top conftest (tests/ has no __init__.py, so pytest imports it as `conftest`).
from conftest import HAIKU, OPENAI, SONNET, LiveApp, start_live_app

from support.browser import Browser, LogDB
from support.fragments import ShownReply, words

SLOW = {"first_token_s": 0.02, "tokens_per_s": 25.0, "reply_tokens": 400}
"""A reply that takes ~16 s: long enough to act in the middle of it."""


@pytest.fixture
def chat(live_app: LiveApp) -> Iterator[Browser]:
    b = Browser(live_app.url)
    yield b
    b.close()


@pytest.fixture
def db(live_app: LiveApp) -> LogDB:
    return LogDB(live_app.database_url)


def ask(chat: Browser, db: LogDB, text: str) -> tuple[str, str]:
    conversation_id = chat.new_conversation(text)
    return conversation_id, db.turn_of(conversation_id)


def test_primary_turn(chat: Browser, db: LogDB) -> None:
    _, turn_id = ask(chat, db, "Hello there")
    turn = db.wait_final(turn_id)
    assert (turn["status"], turn["tier"], turn["tier_index"], turn["model"]) == (
        "ok",
        "sonnet",
        0,
        SONNET,
    )
    assert turn["degraded_reason"] is None and turn["attempt_count"] == 1
    assert turn["ttft_ms"] > 0 and turn["total_ms"] >= turn["ttft_ms"]
    assert turn["output_tokens"] and turn["input_tokens"]
    assert db.reply(turn_id)
    [attempt] = db.attempts(turn_id)
    assert (attempt["tier"], attempt["outcome"], attempt["error_kind"]) == ("sonnet", "ok", None)
    [user] = db.query("SELECT content FROM messages WHERE id = ?", turn["user_message_id"])
    assert user["content"] == "Hello there"


def test_turn_answered_by_haiku(live_app: LiveApp, chat: Browser, db: LogDB) -> None:
    live_app.set_fault(SONNET, "status", status=529)
    _, turn_id = ask(chat, db, "Hello haiku")
    turn = db.wait_final(turn_id)
    assert (turn["status"], turn["tier"], turn["tier_index"], turn["model"]) == (
        "degraded",
        "haiku",
        1,
        HAIKU,
    )
    assert "Sonnet" in turn["degraded_reason"]
    attempts = db.attempts(turn_id)
    failed, last = attempts[:-1], attempts[-1]
    assert failed and all(
        (a["tier"], a["outcome"], a["error_kind"], a["http_status"])
        == ("sonnet", "failed", "overloaded", 529)
        for a in failed
    )
    assert (last["tier"], last["outcome"]) == ("haiku", "ok")
    assert turn["attempt_count"] == len(attempts)
    assert db.reply(turn_id)


def test_turn_answered_by_openai(live_app: LiveApp, chat: Browser, db: LogDB) -> None:
    live_app.set_fault(SONNET, "status", status=529)
    live_app.set_fault(HAIKU, "reset")
    _, turn_id = ask(chat, db, "Hello openai")
    turn = db.wait_final(turn_id)
    assert (turn["status"], turn["tier"], turn["provider"], turn["model"]) == (
        "degraded",
        "openai",
        "openai",
        OPENAI,
    )
    attempts = db.attempts(turn_id)
    assert [a["seq"] for a in attempts] == list(range(1, len(attempts) + 1))
    kinds = {(a["tier"], a["error_kind"]) for a in attempts if a["outcome"] == "failed"}
    assert kinds == {("sonnet", "overloaded"), ("haiku", "connection")}
    assert (attempts[-1]["tier"], attempts[-1]["outcome"]) == ("openai", "ok")


def test_all_tiers_failed(live_app: LiveApp, chat: Browser, db: LogDB) -> None:
    live_app.set_fault(SONNET, "status", status=529)
    live_app.set_fault(HAIKU, "status", status=529)
    live_app.set_fault(OPENAI, "status", status=429, code="insufficient_quota")
    _, turn_id = ask(chat, db, "Anyone?")
    turn = db.wait_final(turn_id)
    assert (turn["status"], turn["tier"]) == ("failed", None)
    assert turn["error_message"]
    assert db.reply(turn_id) == ""
    tiers = [a["tier"] for a in db.attempts(turn_id)]
    assert set(tiers) == {"sonnet", "haiku", "openai"} and tiers[-1] == "openai"
    assert db.attempts(turn_id)[-1]["error_kind"] == "quota_exhausted"


def test_browser_disconnect_does_not_lose_the_turn(
    live_app: LiveApp, chat: Browser, db: LogDB
) -> None:
    live_app.set_profile(SONNET, first_token_s=0.02, tokens_per_s=200.0, reply_tokens=200)
    conversation_id, turn_id = ask(chat, db, "Tell me a long story")
    for event in chat.events(conversation_id, turn_id):
        if event == "update":
            break  # the tab closes mid-reply
    turn = db.wait_final(turn_id)
    # The reply runs on without its viewer and is logged whole.
    assert (turn["status"], turn["tier"]) == ("ok", "sonnet")
    assert len(db.reply(turn_id).split()) > 100


def follow_until_checkpointed(
    chat: Browser, db: LogDB, conversation_id: str, turn_id: str, checkpoints: int
) -> tuple[str, list[tuple[float, str]]]:
    """Read a reply's stream, looking at the stored text at each event, until `checkpoints`
    distinct texts have been stored: (the text streamed, [(when seen, text stored)])."""
    shown = ShownReply(turn_id)
    stored: list[tuple[float, str]] = []
    deadline = time.monotonic() + 20
    for name, data in chat.stream(conversation_id, turn_id):
        assert name in ("snapshot", "update"), (name, stored)
        shown.apply(name, data)  # the text so far: the first tokens may come before we connect
        text = db.reply(turn_id)
        if text and (not stored or stored[-1][1] != text):
            stored.append((time.monotonic(), text))
            if len(stored) == checkpoints:
                break
        assert time.monotonic() < deadline, stored
    return shown.screens[-1].body, stored


def test_stop_keeps_the_partial_text(live_app: LiveApp, chat: Browser, db: LogDB) -> None:
    live_app.set_profile(SONNET, **SLOW)
    conversation_id, turn_id = ask(chat, db, "Tell me a very long story")
    streamed, stored = follow_until_checkpointed(chat, db, conversation_id, turn_id, 3)
    # Mid-reply the text is saved now and then, each save a longer prefix of the reply. How
    # often (once per interval, only when changed) is tests/test_checkpoint.py's job, on a
    # stepped clock: timed here, a busy machine could make two saves look close together.
    texts = [text for _, text in stored]
    assert all(b.startswith(a) and len(b) > len(a) for a, b in itertools.pairwise(texts)), stored
    assert db.turn(turn_id)["status"] == "streaming"
    response = chat.post(f"/c/{conversation_id}/turns/{turn_id}/stop")
    assert response.status_code in (200, 303)
    turn = db.wait_final(turn_id)
    assert (turn["status"], turn["tier"]) == ("stopped", "sonnet")
    partial = db.reply(turn_id)
    assert words(partial).startswith(streamed) and len(partial.split()) < 400
    assert all(partial.startswith(text) for _, text in stored)
    assert [a["outcome"] for a in db.attempts(turn_id)] == ["cancelled"]


def test_server_stop_marks_the_turn_interrupted_with_its_partial_text(
    live_app: LiveApp, chat: Browser, db: LogDB
) -> None:
    live_app.set_profile(SONNET, **SLOW)
    conversation_id, turn_id = ask(chat, db, "Tell me an endless story")
    for event in chat.events(conversation_id, turn_id):
        if event == "update":
            break
    chat.close()
    code = live_app.stop()  # SIGTERM; the next test gets a fresh server
    assert "stopping 1 running turn" in live_app.log(), (code, live_app.log())
    turn = db.turn(turn_id)
    assert (turn["status"], turn["tier"]) == ("interrupted", "sonnet")
    assert turn["finished_at"] is not None
    assert db.reply(turn_id)  # the partial text is kept
    assert [a["outcome"] for a in db.attempts(turn_id)] == ["cancelled"]


def test_a_killed_server_leaves_the_turn_interrupted_with_its_partial_text() -> None:
    base = Path(tempfile.mkdtemp(prefix="understudy-kill-"))
    app = start_live_app(base)
    try:
        app.set_profile(SONNET, **SLOW)
        tab = Browser(app.url)
        db = LogDB(app.database_url)
        conversation_id, turn_id = ask(tab, db, "A story, please")
        _, [(_, saved)] = follow_until_checkpointed(tab, db, conversation_id, turn_id, 1)
        tab.close()
        app.process.send_signal(signal.SIGKILL)
        app.process.wait(10)
        # Nothing could record an outcome; the last checkpoint is all there is.
        assert db.turn(turn_id)["status"] == "streaming"

        app = start_live_app(base)  # same data folder
        turn = db.turn(turn_id)
        assert turn["status"] == "interrupted" and turn["finished_at"] is not None
        assert turn["tier"] == "sonnet"
        text = db.reply(turn_id)
        assert text.startswith(saved) and len(text.split()) < 400
        assert "marked 1 unfinished turn" in app.log()
    finally:
        app.stop()
