"""The reply stream over real HTTP: replay, idempotence, disconnects, stop, tier changes."""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING

from web.sim.replies import reply_text

from support.chat import ChatClient, SSEEvent, live_client  # noqa: F401  (`client`: a browser session, not the in-process one)

if TYPE_CHECKING:
    from tests.conftest import LiveApp

SONNET = "claude-sonnet-4-6"
HAIKU = "claude-haiku-4-5-20251001"
GPT = "gpt-5.5"
BODY = re.compile(r'data-testid="reply-body">(.*?)</div>', re.S)
RAW = re.compile(r"<template id=\"raw-[0-9a-f]+\">(.*?)</template>", re.S)


def shown_text(events: list[SSEEvent]) -> str:
    """What a browser applying the events shows before "done": snapshots reset, deltas append."""
    text = ""
    for event in events:
        if event.event == "snapshot":
            text = html.unescape(BODY.search(event.data).group(1))  # type: ignore[union-attr]
        elif event.event == "delta":
            text += html.unescape(event.data)
    return text


def final_text(events: list[SSEEvent]) -> str:
    return html.unescape(RAW.search(events[-1].data).group(1))  # type: ignore[union-attr]


def test_the_stream_replays_the_reply_once_and_ends(client: ChatClient, live_app: LiveApp) -> None:
    # Connect while it streams: ~2.3 s to do so, not 0.4 s.
    live_app.set_profile(SONNET, first_token_s=0.3, tokens_per_s=20.0)
    conversation = client.new_conversation("stream me")
    events = client.finish(conversation, client.last_turn(conversation))
    assert events[0].event == "snapshot"
    assert [e.event for e in events].count("done") == 1
    expected = reply_text(SONNET, "stream me", 40)
    assert shown_text(events) == expected
    assert final_text(events) == expected


def test_a_finished_turn_replays_its_final_state_and_never_calls_a_model(
    client: ChatClient, live_app: LiveApp
) -> None:
    conversation = client.new_conversation("only once")
    turn = client.last_turn(conversation)
    first = client.finish(conversation, turn)
    calls = len(live_app.requests())
    for _ in range(3):
        again = client.stream(conversation, turn)
        assert [e.event for e in again] == ["done"]
        assert final_text(again) == final_text(first)
        # ...and it ends the stream: its element is replaced by one with nothing to connect to.
        assert f'<div id="stream-{turn}" class="turn-stream-ended" hx-swap-oob' in again[0].data
        assert "sse-connect" not in again[0].data
    assert len(live_app.requests()) == calls


def test_a_disconnect_does_not_cancel_the_reply(client: ChatClient, live_app: LiveApp) -> None:
    live_app.set_profile(SONNET, tokens_per_s=15.0)  # ~2.7 s: the reload comes mid-reply
    conversation = client.new_conversation("keep going")
    turn = client.last_turn(conversation)
    partial = client.stream(conversation, turn, limit=3)  # then the "tab" closes
    assert [e.event for e in partial][:1] == ["snapshot"]
    rest = client.finish(conversation, turn)  # a reload: snapshot of the text so far, then live
    expected = reply_text(SONNET, "keep going", 40)
    assert shown_text(rest) == expected
    assert final_text(rest) == expected
    assert client.turns(conversation)[-1][2] == "done"
    assert len(live_app.requests(SONNET)) == 1


def test_stop_keeps_the_partial_text_and_cancels_upstream(
    client: ChatClient, live_app: LiveApp
) -> None:
    live_app.set_profile(SONNET, tokens_per_s=20.0)
    conversation = client.new_conversation("stop me")
    turn = client.last_turn(conversation)
    client.stream(conversation, turn, limit=4)  # some text has arrived
    stopped = client.post(f"/c/{conversation}/turns/{turn}/stop")
    assert stopped.status_code == 200
    assert 'data-state="stopped"' in stopped.text
    assert "Stopped." in stopped.text
    events = client.stream(conversation, turn)
    assert [e.event for e in events] == ["done"]
    partial = final_text(events)
    expected = reply_text(SONNET, "stop me", 40)
    assert partial and expected.startswith(partial) and partial != expected
    assert client.turns(conversation)[-1][2] == "stopped"
    assert len(live_app.requests(SONNET)) == 1  # stopped, not re-made


def test_the_badge_arrives_before_the_first_token(client: ChatClient, live_app: LiveApp) -> None:
    live_app.set_fault(SONNET, "status", status=429)
    # The stream connects before the first token, or at least while Haiku streams (~2.5 s).
    live_app.set_profile(HAIKU, first_token_s=0.5, tokens_per_s=20.0)
    conversation = client.new_conversation("who answers?")
    events = client.finish(conversation, client.last_turn(conversation))
    first_delta = next(i for i, e in enumerate(events) if e.event == "delta")
    snapshots = [e for e in events[:first_delta] if e.event == "snapshot"]
    assert 'data-tier="haiku"' in snapshots[-1].data
    assert "fast mode (smaller model)</span>" in snapshots[-1].data
    assert "Sonnet was unavailable (rate limited)" in snapshots[-1].data
    assert final_text(events) == reply_text(HAIKU, "who answers?", 40)


def test_a_tier_switch_mid_reply_replaces_the_partial_text(
    client: ChatClient, live_app: LiveApp
) -> None:
    live_app.set_profile(SONNET, tokens_per_s=10.0)  # slow enough to see its text first
    live_app.set_fault(SONNET, "cut", after_tokens=20)  # 2 s to connect before the cut, not 0.5
    conversation = client.new_conversation("cut me off")
    events = client.finish(conversation, client.last_turn(conversation))
    switch = [e.event for e in events].index("snapshot", 1)
    before = shown_text(events[:switch])
    assert before.startswith("claude-sonnet-4-6 here.")  # sonnet's partial text was shown
    assert 'data-tier="haiku"' in events[switch].data
    expected = reply_text(HAIKU, "cut me off", 40)
    assert shown_text(events) == expected  # the sonnet text was dropped, not kept in front
    assert final_text(events) == expected
    assert 'data-tier="haiku"' in events[-1].data


def test_exhausted_turn_shows_the_error_and_retry(client: ChatClient, live_app: LiveApp) -> None:
    live_app.set_fault("*", "status", status=503)
    conversation = client.new_conversation("anyone?")
    turn = client.last_turn(conversation)
    events = client.finish(conversation, turn)
    assert 'data-state="failed"' in events[-1].data
    assert 'data-testid="reply-error"' in events[-1].data
    assert 'data-testid="retry"' in events[-1].data
    live_app.clear_faults()
    client.post(f"/c/{conversation}/turns/{turn}/regenerate")
    retried = client.finish(conversation, client.last_turn(conversation))
    assert final_text(retried) == reply_text(SONNET, "anyone?", 40)


def test_a_reply_cut_at_the_length_limit_says_so(client: ChatClient, live_app: LiveApp) -> None:
    live_app.set_fault(SONNET, "status", status=429)
    live_app.set_fault(HAIKU, "status", status=429)
    live_app.set_profile(GPT, reply_tokens=80)  # the test chain gives this tier 60 tokens
    conversation = client.new_conversation("a long one")
    events = client.finish(conversation, client.last_turn(conversation))
    full = reply_text(GPT, "a long one", 80)
    shown = final_text(events)
    assert 'data-state="done"' in events[-1].data and 'data-tier="openai"' in events[-1].data
    assert full.startswith(shown.rstrip()) and len(shown) < len(full)
    assert "reached the model&#39;s length limit" in events[-1].data
    assert "reached the model&#39;s length limit" in client.page(conversation).text
    live_app.clear_faults()
    client.post(f"/c/{conversation}/turns/{client.last_turn(conversation)}/regenerate")
    again = client.finish(conversation, client.last_turn(conversation))
    assert final_text(again) == reply_text(SONNET, "a long one", 40)
    assert "length limit" not in again[-1].data


def test_history_reaches_the_model_as_one_conversation(client: ChatClient) -> None:
    conversation = client.new_conversation("first question")
    client.finish(conversation, client.last_turn(conversation))
    client.send(conversation, "second question")
    events = client.finish(conversation, client.last_turn(conversation))
    # The simulator echoes the last user message, so the newest turn answers the newest message.
    assert final_text(events) == reply_text(SONNET, "second question", 40)
