"""A reply's connection in a real browser: lost and found again, Esc, and what stays usable meanwhile."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import LiveApp, start_live_app
from playwright.sync_api import Page, Request, expect

from web.sim.replies import reply_text
from web.wording import INTERRUPTED_MESSAGE, STOPPED_NOTE

from .helpers import SONNET, composer, last_reply, raw_text, send, wait_done
from support.console import ConsoleErrors
from support.relay import relay_to

LOST = "Connection lost, reconnecting…"
STREAM_PATH = r"/c/[0-9a-f]{32}/turns/[0-9a-f]{32}/stream"
STEP_MS = 500
STEPS = 120  # a minute of the page's time
#: True while the reply streams and no Stop request is on its way (htmx marks the button meanwhile).
STILL_STREAMING = (
    "() => document.querySelector('[data-testid=\"assistant-message\"]').dataset.state"
    " === 'streaming' && !document.querySelector('[data-testid=\"stop\"]')"
    ".classList.contains('htmx-request')"
)


@dataclass
class OwnApp:
    """A server of this test's own, which it may stop and start again (same port, same data)."""

    base: Path
    app: LiveApp
    _hold: socket.socket | None = None

    def stop(self) -> None:
        self.app.stop()
        # Bound but not listening: connections are refused, and nothing else can take the port.
        self._hold = socket.socket()
        self._hold.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._hold.bind(("127.0.0.1", self.app.port))

    def restart(self) -> None:
        self._release()
        self.app = start_live_app(self.base, port=self.app.port)

    def close(self) -> None:
        self._release()
        self.app.stop()

    def _release(self) -> None:
        if self._hold is not None:
            self._hold.close()
            self._hold = None


@pytest.fixture
def own_app(tmp_path: Path) -> Iterator[OwnApp]:
    own = OwnApp(tmp_path, start_live_app(tmp_path))
    own.app.reset()
    yield own
    own.close()


def stream_requests(page: Page) -> list[str]:
    seen: list[str] = []

    def record(request: Request) -> None:
        if request.resource_type == "eventsource":
            seen.append(request.url)

    page.on("request", record)
    return seen


def test_a_stopped_server_is_retried_with_backoff_and_the_reply_ends_after_its_restart(
    page: Page, own_app: OwnApp, console_errors: ConsoleErrors
) -> None:
    console_errors.allow_failed(STREAM_PATH)  # the cut stream, and each refused try
    app = own_app.app
    app.set_profile(SONNET, tokens_per_s=5.0, reply_tokens=200)  # ~40 s: still going at the stop
    tries = stream_requests(page)
    page.clock.install()
    page.goto(app.url)
    prompt = "Keep writing while the server restarts"
    send(page, prompt)
    reply = last_reply(page)
    expect(reply.get_by_test_id("reply-body")).to_contain_text("You asked")
    notice = page.get_by_test_id("connection-status")
    expect(notice).to_be_hidden()
    assert len(tries) == 1

    # The page's timers stand still from here: every retry waits for the test to move time on.
    page.clock.pause_at(page.evaluate("Date.now()") + 1)
    own_app.stop()
    expect(notice).to_be_visible()
    expect(notice).to_have_text(LOST)
    expect(page.get_by_role("status")).to_have_text(LOST)
    expect(reply).to_have_attribute("data-state", "streaming")
    box = composer(page)
    expect(box).to_be_editable()
    box.fill("typed while the server is away")
    expect(box).to_have_value("typed while the server is away")

    stream = page.locator(".turn-stream")
    for step in range(STEPS):
        page.clock.run_for(STEP_MS)
        # Any try that came due has failed and the next one is scheduled.
        expect(stream, f"step {step}, {len(tries)} tries").to_have_attribute(
            "data-connection", "waiting"
        )
    retries = len(tries) - 1
    # Backoff of about 1, 2, 4, 8, then 16 s (each jittered down to half): 5 to 10 tries in a
    # minute. The browser's own retry every 3 s would be 20; a loop, one per step (120).
    assert 5 <= retries <= 10, retries
    assert len(console_errors.seen) <= retries + 1  # one line per try, and the cut itself
    expect(notice).to_be_visible()
    expect(reply).to_have_attribute("data-state", "streaming")

    own_app.restart()
    page.clock.run_for(16_000)  # the longest wait before the next try
    # The turn ended with the old server ("interrupted"); the stream replays its final state.
    expect(reply).to_have_attribute("data-state", "stopped")
    expect(reply.get_by_test_id("reply-note")).to_have_text(INTERRUPTED_MESSAGE)
    partial = raw_text(reply)
    assert partial.startswith("claude-sonnet-4-6 here.")
    assert reply_text(SONNET, prompt, 200).startswith(partial)
    expect(notice).to_have_count(0)
    expect(page.get_by_role("status")).to_have_text(INTERRUPTED_MESSAGE)
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    expect(box).to_have_value("typed while the server is away")
    reconnected = len(tries)
    page.clock.run_for(60_000)
    assert len(tries) == reconnected  # ended: nothing tries again
    assert len(own_app.app.requests(SONNET)) == 0  # the new server called no model for it


def test_a_dropped_connection_picks_the_live_reply_up_where_it_is(
    page: Page, live_app: LiveApp, console_errors: ConsoleErrors
) -> None:
    console_errors.allow_failed(STREAM_PATH)
    live_app.set_profile(SONNET, tokens_per_s=8.0, reply_tokens=60)  # ~7.5 s
    tries = stream_requests(page)
    with relay_to(live_app.port) as network:
        page.goto(network.url)
        prompt = "Talk me through the outage"
        send(page, prompt)
        reply = last_reply(page)
        expect(reply.get_by_test_id("reply-body")).to_contain_text("You asked")
        page.context.set_offline(True)
        network.cut()  # the server keeps writing the reply
        notice = page.get_by_test_id("connection-status")
        expect(notice).to_be_visible()
        expect(page.get_by_role("status")).to_have_text(LOST)
        network.restore()
        page.context.set_offline(False)  # "online": try now, not at the end of the backoff
        wait_done(page)
        assert raw_text(reply) == reply_text(SONNET, prompt, 60)
        expect(notice).to_have_count(0)
        expect(page.get_by_role("status")).to_have_text("Response complete")
    assert len(live_app.requests(SONNET)) == 1  # picked up, not asked again
    assert 2 <= len(tries) <= 5, tries


def test_escape_stops_the_streaming_reply_but_closes_a_dialog_first(
    page: Page, live_app: LiveApp
) -> None:
    live_app.set_profile(SONNET, tokens_per_s=10.0, reply_tokens=200)
    page.goto(live_app.url)
    prompt = "Write a long essay"
    send(page, prompt)
    reply = last_reply(page)
    expect(reply.get_by_test_id("reply-body")).to_contain_text("You asked")
    box = composer(page)
    box.focus()

    # An input method uses Esc to cancel what it is composing: that is all it does.
    box.evaluate(
        "el => el.dispatchEvent(new KeyboardEvent('keydown', "
        "{key: 'Escape', isComposing: true, bubbles: true, cancelable: true}))"
    )
    assert page.evaluate(STILL_STREAMING)

    page.evaluate(
        "() => { const d = document.createElement('dialog'); d.textContent = 'On top';"
        " document.body.append(d); d.showModal(); }"
    )
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert page.evaluate(STILL_STREAMING)

    box.focus()
    box.press("Escape")
    expect(reply).to_have_attribute("data-state", "stopped")
    expect(reply.get_by_test_id("reply-note")).to_have_text(STOPPED_NOTE)
    expect(page.get_by_role("status")).to_have_text(STOPPED_NOTE)
    expect(box).to_be_focused()
    partial = raw_text(reply)
    full = reply_text(SONNET, prompt, 200)
    assert full.startswith(partial) and len(partial) < len(full)


def test_escape_on_a_phone_closes_the_sidebar_before_it_stops_the_reply(
    page: Page, live_app: LiveApp
) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    live_app.set_profile(SONNET, tokens_per_s=10.0, reply_tokens=200)
    page.goto(live_app.url)
    send(page, "A long one, on the go")
    reply = last_reply(page)
    expect(reply.get_by_test_id("reply-body")).to_contain_text("You asked")
    page.get_by_role("button", name="Conversations").click()
    listing = page.get_by_test_id("conversation-list")
    expect(listing).to_be_visible()
    page.keyboard.press("Escape")
    expect(listing).to_be_hidden()
    assert page.evaluate(STILL_STREAMING)
    page.keyboard.press("Escape")
    expect(reply).to_have_attribute("data-state", "stopped")
    expect(page.get_by_role("status")).to_have_text(STOPPED_NOTE)
