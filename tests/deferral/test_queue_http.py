"""Queued replies over HTTP on a live server (its own worker, the simulator's Message Batches):
what the page and the stream say while queued and when the reply lands, the conversation held
meanwhile, Cancel, and another session's requests."""

from __future__ import annotations

import re
import threading

from conftest import LiveApp

from web.db.chat import QUEUED_BUSY
from web.wording import QUEUE_CANCELLED_NOTE, queued_reason

from support.chat import CSRF, ChatClient, SSEEvent
from support.queue_app import all_down

BADGE = re.compile(r'data-testid="tier-badge" title="([^"]*)">([^<]*)<')


def queue_a_message(chat: ChatClient, text: str) -> tuple[str, str, list[SSEEvent]]:
    """A new conversation with ``text``, every tier down: its id, its turn's, and the turn's
    stream followed until the chain gave up and queued it."""
    conversation = chat.new_conversation(text)
    turn = chat.last_turn(conversation)
    return conversation, turn, chat.finish(conversation, turn)


def test_queued_then_the_reply_lands_on_the_open_stream(queue_app: LiveApp) -> None:
    all_down(queue_app)
    chat = ChatClient(queue_app.url)
    try:
        conversation, turn, first = queue_a_message(chat, "What is an understudy?")
        queued = first[-1].data
        assert 'data-state="queued"' in queued
        assert BADGE.search(queued).groups() == (  # type: ignore[union-attr]
            "Queued for Sonnet (Message Batches)",
            "queued",
        )
        assert queued_reason(["Sonnet", "Haiku", "GPT-5.5"]) in queued
        assert 'data-testid="cancel-queued"' in queued
        assert 'sse-connect="/c/' in queued  # the page keeps following it

        page = chat.page(conversation).text
        assert 'data-state="queued"' in page and 'data-testid="composer-queued"' in page
        assert "disabled>Send" in page

        landed = chat.finish(conversation, turn)  # its state, then "done" once it landed
        assert [e.event for e in landed] == ["snapshot", "done"]
        assert 'data-state="queued"' in landed[0].data
        done = landed[1].data
        assert 'data-state="done"' in done
        assert BADGE.search(done).groups() == (  # type: ignore[union-attr]
            "Generated via Sonnet (Message Batches)",
            "delayed reply",
        )
        assert "Queued at " in done and "were unavailable; answered via Sonnet" in done
        assert chat.turns(conversation)[-1] == (turn, "deferral", "done")
        assert 'data-testid="composer-queued" role="status" hidden' in chat.page(conversation).text
    finally:
        chat.close()


def test_a_stream_that_connects_after_the_turn_was_queued_says_so_at_once(
    queue_app: LiveApp,
) -> None:
    """A page rendered while the chain was still trying (or whose stream dropped) connects once
    the turn is queued: the stream's first event is the queued state, not silence until the
    reply lands (the batch takes a minute here), so the page stops saying "asking Sonnet..."."""
    all_down(queue_app)
    queue_app.set_profile("claude-sonnet-4-6", batch_delay_s=60)
    chat = ChatClient(queue_app.url)
    try:
        conversation, turn, _ = queue_a_message(chat, "Queue me")
        assert chat.turns(conversation)[-1] == (turn, "deferral", "queued")
        [first] = chat.stream(conversation, turn, limit=1)
        assert first.event == "snapshot"
        assert f'id="reply-{turn}"' in first.data and 'data-state="queued"' in first.data
        assert queued_reason(["Sonnet", "Haiku", "GPT-5.5"]) in first.data
        assert 'data-testid="cancel-queued"' in first.data
        assert "sse-connect" not in first.data  # the page's stream element stays as it is
        assert chat.post(f"/c/{conversation}/turns/{turn}/cancel").status_code == 200
    finally:
        chat.close()


def test_a_queued_reply_holds_its_conversation_only(queue_app: LiveApp) -> None:
    all_down(queue_app)
    queue_app.set_profile("claude-sonnet-4-6", batch_delay_s=30)  # stays queued for the test
    chat = ChatClient(queue_app.url)
    try:
        conversation, turn, _ = queue_a_message(chat, "First question")
        refused = chat.send(conversation, "A second question")
        assert refused.status_code == 409
        assert QUEUED_BUSY in refused.text
        queue_app.clear_faults()
        other = chat.new_conversation("Elsewhere, all is well")
        chat.finish(other, chat.last_turn(other))
        assert chat.turns(other)[-1][1:] == ("sonnet", "done")
        sidebar = chat.page(other).text
        assert f'data-conversation="{conversation}" data-activity="queued"' in sidebar

        stranger = ChatClient(queue_app.url)
        try:
            assert stranger.post(f"/c/{conversation}/turns/{turn}/cancel").status_code == 404
        finally:
            stranger.close()
        cancelled = chat.post(f"/c/{conversation}/turns/{turn}/cancel")
        assert cancelled.status_code == 200
        assert 'data-state="stopped"' in cancelled.text
        assert QUEUE_CANCELLED_NOTE in cancelled.text
        assert chat.turns(conversation)[-1] == (turn, "", "stopped")
        assert chat.send(conversation, "Now a second question").status_code == 200
    finally:
        chat.close()


def test_a_reply_lands_on_a_stream_whose_session_was_rotated_meanwhile(
    queue_app: LiveApp,
) -> None:
    """An admin login rotates the session and moves its conversations to the new owner while
    the queued reply's stream is open: the reply still lands on it, as "done"."""
    all_down(queue_app)
    queue_app.set_profile("claude-sonnet-4-6", batch_delay_s=3)
    chat = ChatClient(queue_app.url)
    try:
        conversation, turn, _ = queue_a_message(chat, "Rotate me")
        landed: list[list[SSEEvent]] = []
        follower = threading.Thread(target=lambda: landed.append(chat.finish(conversation, turn)))
        follower.start()
        login = chat.http.get("/admin/login")
        token = CSRF.search(login.text).group(1)  # type: ignore[union-attr]
        reply = chat.http.post(
            "/admin/login", data={"csrf_token": token, "password": queue_app.admin_password}
        )
        assert reply.status_code == 303
        follower.join(timeout=30)
        assert not follower.is_alive()
        assert [e.event for e in landed[0]] == ["snapshot", "done"]
        assert 'data-state="done"' in landed[0][1].data
        assert "delayed reply" in landed[0][1].data
    finally:
        chat.close()
