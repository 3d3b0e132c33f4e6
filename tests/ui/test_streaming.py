"""Streaming in a real browser: stop, reload mid-stream, one stream per turn, status, scrolling."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from playwright.sync_api import Page, Request, expect

from web.sim.replies import reply_text

from .helpers import SONNET, composer, last_reply, raw_text, replies, send, wait_done

if TYPE_CHECKING:
    from tests.conftest import LiveApp


def test_stop_keeps_the_partial_text(page: Page, live_app: LiveApp) -> None:
    live_app.set_profile(SONNET, tokens_per_s=10.0, reply_tokens=200)
    page.goto(live_app.url)
    send(page, "Write a long essay")
    reply = last_reply(page)
    expect(reply.get_by_test_id("reply-body")).to_contain_text("You asked")
    expect(page.locator("#send")).to_be_disabled()
    reply.get_by_role("button", name="Stop").click()
    expect(reply).to_have_attribute("data-state", "stopped")
    expect(reply.get_by_test_id("reply-note")).to_have_text("Stopped.")
    expect(page.locator("#send")).to_be_enabled()
    partial = raw_text(reply)
    full = reply_text(SONNET, "Write a long essay", 200)
    assert partial.startswith("claude-sonnet-4-6 here.") and full.startswith(partial)
    assert len(partial) < len(full)
    page.reload()
    expect(last_reply(page)).to_have_attribute("data-state", "stopped")
    assert raw_text(last_reply(page)) == partial
    assert len(live_app.requests(SONNET)) == 1


def test_reload_mid_stream_ends_with_the_complete_reply(page: Page, live_app: LiveApp) -> None:
    live_app.set_profile(SONNET, tokens_per_s=25.0)
    page.goto(live_app.url)
    send(page, "Keep talking")
    expect(last_reply(page).get_by_test_id("reply-body")).to_contain_text("You asked")
    page.reload()
    reply = wait_done(page)
    assert raw_text(reply) == reply_text(SONNET, "Keep talking", 40)
    expect(replies(page)).to_have_count(1)
    assert len(live_app.requests(SONNET)) == 1  # the reload did not call the model again


def test_exactly_one_stream_request_per_turn(page: Page, live_app: LiveApp) -> None:
    streams: list[str] = []

    def record(request: Request) -> None:
        if request.resource_type == "eventsource":
            streams.append(request.url)

    page.on("request", record)
    live_app.set_profile("*", tokens_per_s=40.0)  # ~1 s a reply: long enough to be streamed
    page.goto(live_app.url)
    send(page, "First")
    wait_done(page)
    send(page, "Second")
    expect(replies(page)).to_have_count(2)
    wait_done(page)
    send(page, "Third")  # one more full turn: time for any reconnect of the first two to show
    expect(replies(page)).to_have_count(3)
    wait_done(page)
    turn_ids = replies(page).evaluate_all("els => els.map(e => e.dataset.turn)")
    assert len(set(turn_ids)) == 3
    # A reply that ended before its page was shown needs no stream (a busy machine can be that
    # slow: the first message loads a whole page); none is ever opened twice.
    for turn in turn_ids:
        assert sum(f"/turns/{turn}/stream" in url for url in streams) <= 1, streams
    assert 1 <= len(streams) <= 3
    expect(page.locator(".turn-stream")).to_have_count(0)  # no element left to reconnect
    assert len(live_app.requests(SONNET)) == 3


def test_status_region_announces_generating_and_complete(page: Page, live_app: LiveApp) -> None:
    live_app.set_profile(SONNET, first_token_s=0.5, tokens_per_s=20.0)  # ~2.5 s "Generating…"
    page.goto(live_app.url)
    send(page, "Status please")
    status = page.get_by_role("status")
    expect(status).to_have_text("Generating…")
    wait_done(page)
    expect(status).to_have_text("Response complete")
    expect(page.get_by_role("log")).to_have_attribute("aria-live", "off")  # tokens are not read out


def test_auto_scroll_pauses_when_the_user_scrolls_up(page: Page, live_app: LiveApp) -> None:
    page.set_viewport_size({"width": 800, "height": 500})
    live_app.set_profile(SONNET, tokens_per_s=100.0, reply_tokens=400)
    page.goto(live_app.url)
    send(page, "A long one")
    transcript = page.get_by_role("log")
    overflowing = "() => { const el = document.getElementById('transcript');"
    page.wait_for_function(overflowing + " return el.scrollHeight > el.clientHeight + 300; }")
    at_bottom = "el => el.scrollHeight - el.scrollTop - el.clientHeight < 80"
    assert transcript.evaluate(at_bottom)  # followed the stream so far
    jump = page.get_by_role("button", name="Jump to latest")
    expect(jump).to_be_hidden()
    transcript.evaluate("el => { el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); }")
    expect(jump).to_be_visible()
    wait_done(page)
    assert transcript.evaluate("el => el.scrollTop") == 0  # new text did not pull the view down
    jump.click()
    expect(jump).to_be_hidden()
    assert transcript.evaluate(at_bottom)


def test_copy_and_regenerate(page: Page, live_app: LiveApp) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.goto(live_app.url)
    send(page, "Copy me")
    reply = wait_done(page)
    reply.get_by_role("button", name="Copy").click()
    expect(reply.get_by_role("button", name="Copied")).to_be_visible()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == reply_text(SONNET, "Copy me", 40)
    first_turn = reply.get_attribute("data-turn") or ""
    reply.get_by_role("button", name="Regenerate").click()
    expect(last_reply(page)).not_to_have_attribute("data-turn", first_turn)
    wait_done(page)
    expect(replies(page)).to_have_count(1)
    assert len(live_app.requests(SONNET)) == 2
    expect(composer(page)).to_be_enabled()
    expect(page).to_have_url(re.compile(r"/c/[0-9a-f]{32}$"))
