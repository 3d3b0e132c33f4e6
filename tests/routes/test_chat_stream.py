"""The reply stream over real HTTP: replay, idempotence, disconnects, stop, tier changes."""

from __future__ import annotations

import html
import re
import time
from typing import TYPE_CHECKING

from web.providers.base import ErrorKind
from web.sim.replies import reply_text
from web.wording import waiting_status

from support.browser import LogDB
from support.chat import ChatClient, SSEEvent, live_client  # noqa: F401  (`client`: a browser session, not the in-process one)
from support.fragments import Screen, ShownReply, words
from support.outcomes import HAIKU as HAIKU_INFO
from support.outcomes import SONNET as SONNET_INFO
from support.outcomes import failed

if TYPE_CHECKING:
    from tests.conftest import LiveApp

SONNET = "claude-sonnet-4-6"
HAIKU = "claude-haiku-4-5-20251001"
GPT = "gpt-5.5"
RAW = re.compile(r"<template id=\"raw-[0-9a-f]+\">(.*?)</template>", re.S)


def screens(turn_id: str, events: list[SSEEvent]) -> list[Screen]:
    """What the reply showed after each event, applied as the page applies them."""
    shown = ShownReply(turn_id)
    for event in events:
        shown.apply(event.event, event.data)
    return shown.screens


def shown_text(turn_id: str, events: list[SSEEvent]) -> str:
    """The body's words at the end, after checking that every screen of the tier that answered
    showed a beginning of them (the body is re-rendered from the text so far; the newest words
    may come with "done")."""
    shown = screens(turn_id, events)
    final = shown[-1].body
    for screen in shown:
        if screen.tier == shown[-1].tier:  # an earlier tier's text was replaced, not extended
            assert final.startswith(screen.body), (screen.body, final)
    return final


def final_text(events: list[SSEEvent]) -> str:
    return html.unescape(RAW.search(events[-1].data).group(1))  # type: ignore[union-attr]


def test_the_stream_replays_the_reply_once_and_ends(client: ChatClient, live_app: LiveApp) -> None:
    # Connect while it streams: ~2.3 s to do so, not 0.4 s.
    live_app.set_profile(SONNET, first_token_s=0.3, tokens_per_s=20.0)
    conversation = client.new_conversation("stream me")
    turn = client.last_turn(conversation)
    events = client.finish(conversation, turn)
    assert events[0].event == "snapshot"
    assert [e.event for e in events].count("done") == 1
    assert "update" in [e.event for e in events]  # the body grew while it streamed
    expected = reply_text(SONNET, "stream me", 40)
    assert shown_text(turn, events) == words(expected)
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
    assert shown_text(turn, rest) == words(expected)
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


def test_the_status_says_who_is_asked_and_the_badge_comes_with_the_first_text(
    client: ChatClient, live_app: LiveApp
) -> None:
    live_app.set_fault(SONNET, "status", status=429)
    # Haiku's first token in 2 s: the stream connects long before (a loopback GET).
    live_app.set_profile(HAIKU, first_token_s=2.0, tokens_per_s=50.0)
    conversation = client.new_conversation("who answers?")
    turn = client.last_turn(conversation)
    events = client.finish(conversation, turn)
    shown = screens(turn, events)
    first_text = next(i for i, s in enumerate(shown) if s.body)
    waiting = shown[:first_text]
    assert waiting, "the stream connected after the first text"
    rate_limited = failed(SONNET_INFO, 1, ErrorKind.RATE_LIMITED, 429)
    expected = waiting_status(HAIKU_INFO, rate_limited, retry=False)
    assert expected == "Sonnet was rate limited; asking Haiku (fast mode)…"
    assert waiting[-1].status == expected
    for screen in waiting:  # nothing claims Haiku answered before it wrote a word
        assert not screen.badge and not screen.reason and screen.tier == ""
    answering = shown[first_text]
    assert answering.tier == "haiku" and answering.badge and answering.status == ""
    assert (
        answering.reason
        == "Reply generated by Haiku because Sonnet was unavailable (rate limited)."
    )
    assert final_text(events) == reply_text(HAIKU, "who answers?", 40)


def test_a_tier_switch_mid_reply_replaces_the_partial_text(
    client: ChatClient, live_app: LiveApp
) -> None:
    live_app.set_profile(SONNET, tokens_per_s=10.0)  # slow enough to see its text first
    live_app.set_fault(SONNET, "cut", after_tokens=20)  # 2 s to connect before the cut, not 0.5
    live_app.set_profile(HAIKU, first_token_s=0.5)  # the restart is on screen for a moment
    conversation = client.new_conversation("cut me off")
    turn = client.last_turn(conversation)
    events = client.finish(conversation, turn)
    shown = screens(turn, events)
    assert shown[1].body.startswith("claude-sonnet-4-6")  # sonnet's partial text was shown
    restart = next(i for i, s in enumerate(shown) if s.status.startswith("Sonnet's reply broke"))
    assert (
        shown[restart].status
        == "Sonnet's reply broke off; asking Haiku (fast mode) to answer from the start…"
    )
    assert shown[restart].body == "" and not shown[restart].badge  # the cut text is gone
    haiku = next(s for s in shown[restart:] if s.body)
    assert (
        haiku.tier == "haiku"
        and haiku.reason
        == "Reply generated by Haiku because Sonnet's reply broke off (connection failed)."
    )
    expected = reply_text(HAIKU, "cut me off", 40)
    assert shown_text(turn, events) == words(expected)  # the sonnet text was dropped
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


ATTEMPT = re.compile(
    r"hx-vals='\{&#34;attempt&#34;: &#34;(\d+)&#34;\}'|hx-vals='\{\"attempt\": \"(\d+)\"\}'"
)


def test_answer_now_abandons_the_wait_and_the_log_says_the_user_chose_it(
    client: ChatClient, live_app: LiveApp
) -> None:
    live_app.set_fault(SONNET, "hang")  # Sonnet would keep the reply waiting 5 s (its timeout)
    conversation = client.new_conversation("no time to wait")
    turn = client.last_turn(conversation)
    deadline = time.monotonic() + 5
    while True:  # until the reply waits on Sonnet (its first try has begun)
        [snapshot] = client.stream(conversation, turn, limit=1)
        found = ATTEMPT.search(snapshot.data)
        if found:
            break
        assert time.monotonic() < deadline, snapshot.data
    attempt = found.group(1) or found.group(2)
    assert 'data-testid="answer-now"' in snapshot.data and "Answer with Haiku now" in snapshot.data
    skipped = client.post(f"/c/{conversation}/turns/{turn}/skip", {"attempt": attempt})
    assert skipped.status_code == 204
    events = client.finish(conversation, turn)
    assert 'data-tier="haiku"' in events[-1].data
    assert "Reply generated by Haiku because you chose not to wait for Sonnet." in events[-1].data
    assert final_text(events) == reply_text(HAIKU, "no time to wait", 40)
    attempts = LogDB(live_app.database_url).attempts(turn)
    assert [(a["tier"], a["outcome"]) for a in attempts] == [
        ("sonnet", "abandoned"),
        ("haiku", "ok"),
    ]
    assert attempts[0]["error_message"] == "the user chose to answer with Haiku now"
    assert attempts[0]["elapsed_ms"] < 5000  # it did not wait for Sonnet's timeout
    again = client.post(f"/c/{conversation}/turns/{turn}/skip", {"attempt": attempt})
    assert again.status_code == 204  # too late: nothing happens
    assert len(LogDB(live_app.database_url).attempts(turn)) == 2
