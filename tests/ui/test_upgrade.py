""" "Ask Sonnet again" in a real browser: a fast-mode reply is replaced by the primary's, the earlier
reply stays one click away, and an upgrade that fails leaves the fast-mode reply in place."""

from __future__ import annotations

from typing import TYPE_CHECKING

from playwright.sync_api import Locator, Page, expect

from web.providers.base import ErrorKind
from web.sim.replies import reply_text
from web.status import TurnStatus
from web.wording import (
    earlier_reply_summary,
    upgrade_kept_note,
    upgrade_label,
    upgraded_note,
    upgrading_note,
)

from .helpers import HAIKU, SONNET, last_reply, raw_text, replies, send, wait_done, words

if TYPE_CHECKING:
    from tests.conftest import LiveApp

FAST_MODE = "fast mode (smaller model)"


def _fast_mode_reply(page: Page, live_app: LiveApp, text: str) -> Locator:
    """With Sonnet down, a message gets Haiku's reply; then Sonnet comes back."""
    live_app.set_fault(SONNET, "status", status=529)
    page.goto(live_app.url)
    send(page, text)
    reply = wait_done(page)
    expect(reply.get_by_test_id("tier-badge")).to_have_text(FAST_MODE)
    live_app.clear_faults()
    live_app.clear_requests()
    return reply


def _expect_upgraded(page: Page, prompt: str) -> None:
    expect(replies(page)).to_have_count(1)
    reply = wait_done(page)
    expect(reply).to_have_attribute("data-tier", "sonnet")
    expect(reply.get_by_test_id("tier-badge")).to_have_count(0)
    assert raw_text(reply) == reply_text(SONNET, prompt, 40)
    expect(page.get_by_test_id("upgraded-note")).to_have_text(
        upgraded_note("Sonnet", "Haiku", FAST_MODE)
    )
    expect(page.get_by_test_id("upgrade")).to_have_count(0)
    earlier = page.get_by_test_id("earlier-reply")
    expect(earlier).to_have_count(1)
    assert earlier.evaluate("details => details.open") is False  # one click away, not shown
    body = earlier.get_by_test_id("earlier-body")
    expect(body).to_be_hidden()
    earlier.get_by_text(earlier_reply_summary("Haiku")).click()
    expect(body).to_be_visible()
    assert words(body.inner_text()) == words(reply_text(HAIKU, prompt, 40))
    expect(earlier.get_by_test_id("tier-badge")).to_have_text(FAST_MODE)
    expect(earlier.get_by_test_id("tier-badge")).to_have_attribute("title", "Generated via Haiku")


def test_the_upgrade_action_replaces_a_fast_mode_reply_with_the_primarys(
    page: Page, live_app: LiveApp
) -> None:
    prompt = "Tell me about understudies"
    reply = _fast_mode_reply(page, live_app, prompt)
    ask = reply.get_by_test_id("upgrade")
    expect(ask).to_have_text(upgrade_label("Sonnet"))
    live_app.set_profile(SONNET, first_token_s=2.0)  # a moment to see it being written
    ask.click()
    writing = last_reply(page)
    expect(writing).to_have_attribute("data-state", "streaming")
    expect(page.get_by_test_id("upgrade-note")).to_have_text(upgrading_note("Sonnet", "Haiku"))
    expect(page.get_by_test_id("earlier-reply")).to_have_count(1)  # kept while Sonnet writes
    _expect_upgraded(page, prompt)
    assert [r["model"] for r in live_app.requests()] == [SONNET]  # Sonnet alone, once
    page.reload()
    _expect_upgraded(page, prompt)


def test_an_upgrade_that_fails_keeps_the_fast_mode_reply(page: Page, live_app: LiveApp) -> None:
    prompt = "Stay with me"
    reply = _fast_mode_reply(page, live_app, prompt)
    live_app.set_fault(SONNET, "status", status=529)  # down again as it is asked
    reply.get_by_test_id("upgrade").click()
    note = upgrade_kept_note("Sonnet", "Haiku", TurnStatus.FAILED, ErrorKind.OVERLOADED)
    expect(page.get_by_test_id("upgrade-note")).to_have_text(note)
    for _ in range(2):  # as it ended, and after a reload
        kept = wait_done(page)
        expect(replies(page)).to_have_count(1)
        expect(kept).to_have_attribute("data-tier", "haiku")
        expect(kept.get_by_test_id("tier-badge")).to_have_text(FAST_MODE)
        assert raw_text(kept) == reply_text(HAIKU, prompt, 40)
        expect(page.get_by_test_id("earlier-reply")).to_have_count(0)
        expect(kept.get_by_test_id("upgrade")).to_have_text(upgrade_label("Sonnet"))
        page.reload()
        expect(page.get_by_test_id("upgrade-note")).to_have_text(note)
    # A message sent from this page: the offer on the earlier reply goes (the server would refuse).
    ask = replies(page).first.get_by_test_id("upgrade")
    expect(ask).to_be_visible()
    live_app.clear_faults()
    send(page, "Next one")
    expect(replies(page)).to_have_count(2)
    expect(ask).to_be_hidden()
    expect(wait_done(page)).to_have_attribute("data-tier", "sonnet")
    expect(ask).to_be_hidden()
