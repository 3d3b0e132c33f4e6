"""Sending, limits, malformed requests, ownership (404), rename/delete/regenerate, over real HTTP."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import httpx
import pytest

from web.sim.replies import reply_text

from support.chat import ChatClient, live_client  # noqa: F401  (`client`: a browser session, not the in-process one)

if TYPE_CHECKING:
    from tests.conftest import LiveApp

SONNET = "claude-sonnet-4-6"
LIMIT = 32_000


def test_first_message_creates_the_conversation_and_a_streaming_reply(
    client: ChatClient, live_app: LiveApp
) -> None:
    # Still streaming when the page loads: ~2.5 s to fetch it, not 0.6 s.
    live_app.set_profile(SONNET, first_token_s=0.5, tokens_per_s=20.0)
    conversation = client.new_conversation("What is an understudy?")
    page = client.page(conversation)
    assert "What is an understudy?" in page.text
    assert f'sse-connect="/c/{conversation}/turns/' in page.text
    events = client.finish(conversation, client.last_turn(conversation))
    assert 'data-state="done"' in events[-1].data
    assert client.turns(conversation)[-1][1:] == ("sonnet", "done")


def test_a_message_in_a_conversation_returns_the_new_turn_fragment(
    client: ChatClient, live_app: LiveApp
) -> None:
    conversation = client.new_conversation("one")
    client.finish(conversation, client.last_turn(conversation))
    live_app.set_profile(SONNET, first_token_s=0.5)
    reply = client.send(conversation, "two <b>bold</b>")
    assert reply.status_code == 200
    assert "two &lt;b&gt;bold&lt;/b&gt;" in reply.text
    assert 'data-state="streaming"' in reply.text
    assert "two" not in reply.text.split("sse-connect=")[1].split(">")[0]  # never in the URL
    assert len(client.turns(conversation)) == 2


@pytest.mark.parametrize("content", ["", "   \n\t "])
def test_empty_messages_are_refused_and_nothing_is_stored(client: ChatClient, content: str) -> None:
    reply = client.post("/c", {"content": content})
    assert reply.status_code == 422
    assert "Type a message" in reply.text
    assert "No conversations yet" in client.http.get("/").text


def test_a_message_over_the_limit_is_refused_with_the_numbers(client: ChatClient) -> None:
    reply = client.post("/c", {"content": "x" * (LIMIT + 1)})
    assert reply.status_code == 413
    assert "32,001" in reply.text and "32,000" in reply.text
    assert "No conversations yet" in client.http.get("/").text

    conversation = client.new_conversation("short")
    client.finish(conversation, client.last_turn(conversation))
    assert client.send(conversation, "y" * (LIMIT + 1)).status_code == 413
    assert len(client.turns(conversation)) == 1


def test_a_message_at_the_limit_is_accepted(client: ChatClient) -> None:
    conversation = client.new_conversation("z" * LIMIT)
    client.finish(conversation, client.last_turn(conversation))


def test_malformed_requests_get_clear_4xx(client: ChatClient) -> None:
    json_body = client.http.post(
        "/c", json={"content": "hi"}, headers={"X-CSRF-Token": client.csrf}
    )
    assert json_body.status_code == 422  # no form field: nothing to send
    page = client.http.get("/c/not-a-conversation")
    assert page.status_code == 404
    assert "belongs to another browser session" in page.text
    assert client.http.get("/nowhere").status_code == 404
    assert client.http.put("/c").status_code == 405


def test_another_session_gets_404_for_everything(client: ChatClient, stranger: ChatClient) -> None:
    conversation = client.new_conversation("private")
    turn = client.last_turn(conversation)
    client.finish(conversation, turn)
    base = f"/c/{conversation}"
    assert stranger.http.get(base).status_code == 404
    assert stranger.http.get(f"{base}/turns/{turn}/stream").status_code == 404
    for path in (
        f"{base}/messages",
        f"{base}/turns/{turn}/stop",
        f"{base}/turns/{turn}/regenerate",
        f"{base}/rename",
        f"{base}/delete",
    ):
        reply = stranger.post(path, {"content": "mine now", "title": "mine now"})
        assert reply.status_code == 404, path
    assert "private" not in stranger.http.get("/").text
    page = client.page(conversation)
    assert page.status_code == 200 and "mine now" not in page.text


def test_unknown_turn_is_404(client: ChatClient) -> None:
    conversation = client.new_conversation("hello")
    assert client.http.get(f"/c/{conversation}/turns/0000/stream").status_code == 404
    assert client.post(f"/c/{conversation}/turns/0000/regenerate").status_code == 404


def test_a_second_message_while_a_reply_streams_is_refused(
    client: ChatClient, live_app: LiveApp
) -> None:
    live_app.set_profile(SONNET, tokens_per_s=20.0)
    conversation = client.new_conversation("slow one")
    reply = client.send(conversation, "impatient")
    assert reply.status_code == 409
    assert "still being written" in reply.text
    assert "impatient" not in client.page(conversation).text


def test_racing_messages_start_one_reply_and_the_others_are_refused(
    client: ChatClient, live_app: LiveApp
) -> None:
    conversation = client.new_conversation("first")
    client.finish(conversation, client.last_turn(conversation))
    live_app.set_profile(SONNET, tokens_per_s=20.0)
    texts = [f"racer {n}" for n in range(6)]
    with ThreadPoolExecutor(len(texts)) as pool:  # a double click, several tabs
        statuses = list(pool.map(lambda t: client.send(conversation, t).status_code, texts))
    assert sorted(statuses) == [200] + [409] * 5
    turns = client.turns(conversation)
    assert len(turns) == 2
    page = client.page(conversation).text
    assert sum(text in page for text in texts) == 1
    with ThreadPoolExecutor(4) as pool:  # Regenerate, clicked four times
        path = f"/c/{conversation}/turns/{turns[-1][0]}/regenerate"
        client.post(f"/c/{conversation}/turns/{turns[-1][0]}/stop")
        statuses = list(pool.map(lambda _: client.post(path).status_code, range(4)))
    assert sorted(statuses) == [200] + [409] * 3


def test_rename_and_delete(client: ChatClient) -> None:
    conversation = client.new_conversation("old name")
    client.finish(conversation, client.last_turn(conversation))
    assert client.post(f"/c/{conversation}/rename", {"title": "   "}).status_code == 422
    renamed = client.post(f"/c/{conversation}/rename", {"title": "  New   name "})
    assert renamed.status_code == 200
    assert "New name" in renamed.text
    assert "<title>New name · Understudy</title>" in renamed.text  # htmx sets the tab's title
    # The redrawn header's forms carry the token, so they also work as plain form posts.
    assert f'name="csrf_token" value="{client.csrf}"' in renamed.text
    assert 'name="csrf_token" value=""' not in renamed.text
    assert "<title>New name" in client.page(conversation).text
    deleted = client.post(f"/c/{conversation}/delete")
    assert deleted.headers["HX-Redirect"] == f"/?deleted={conversation}"  # where Undo is
    assert client.page(conversation).status_code == 404


def test_regenerate_answers_the_same_message_again(client: ChatClient, live_app: LiveApp) -> None:
    conversation = client.new_conversation("again please")
    first = client.last_turn(conversation)
    client.finish(conversation, first)
    reply = client.post(f"/c/{conversation}/turns/{first}/regenerate")
    assert reply.status_code == 200
    second = client.last_turn(conversation)
    assert second != first
    events = client.finish(conversation, second)
    assert reply_text(SONNET, "again please", 40) in events[-1].data
    turns = client.turns(conversation)
    assert [t[0] for t in turns] == [second]  # the page shows the latest reply only
    assert len(live_app.requests(SONNET)) == 2


def test_the_page_shows_a_finished_conversation_without_streams(client: ChatClient) -> None:
    conversation = client.new_conversation("done soon")
    client.finish(conversation, client.last_turn(conversation))
    page = client.page(conversation)
    assert "sse-connect" not in page.text
    assert 'role="log"' in page.text and 'role="status"' in page.text


def test_healthz(live_app: LiveApp) -> None:
    assert httpx.get(f"{live_app.url}/healthz").text == "ok"
