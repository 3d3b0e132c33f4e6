"""A queued reply in the browser: with every synchronous tier down, the message shows "queued"
with its sentence, then the reply appears without a reload with the "delayed reply" badge (and
the tab says so when it is in the background); a reload shows it; Cancel withdraws a queued one."""

from __future__ import annotations

from conftest import LiveApp
from playwright.sync_api import Page, expect

from web.wording import QUEUE_CANCELLED_NOTE, queued_composer_hint, queued_reason

from .helpers import last_reply, send, wait_done
from support.queue_app import SONNET, all_down

LAND_MS = 20_000
"""An upper bound for the batch (0.5 s) and the worker's polls; usually about a second."""


def test_a_queued_reply_lands_without_a_reload(page: Page, queue_app: LiveApp) -> None:
    queue_app.set_profile(SONNET, batch_delay_s=3)
    all_down(queue_app)
    page.goto(queue_app.url)
    send(page, "Explain understudies while everything is down")
    reply = last_reply(page)
    expect(reply).to_have_attribute("data-state", "queued", timeout=LAND_MS)
    badge = reply.get_by_test_id("tier-badge")
    expect(badge).to_have_text("queued")
    expect(reply.get_by_test_id("degraded-reason")).to_have_text(
        queued_reason(["Sonnet", "Haiku", "GPT-5.5"])
    )
    expect(reply.get_by_test_id("cancel-queued")).to_be_visible()
    expect(page.get_by_test_id("composer-queued")).to_have_text(queued_composer_hint())
    expect(page.locator("#send")).to_be_disabled()
    title = page.title()
    # The tab goes to the background while it waits.
    page.evaluate(
        """() => {
          Object.defineProperty(document, "hidden", { configurable: true, get: () => true });
          document.dispatchEvent(new Event("visibilitychange"));
        }"""
    )

    reply = last_reply(page)  # no reload: the stream brings it
    expect(reply).to_have_attribute("data-state", "done", timeout=LAND_MS)
    badge = reply.get_by_test_id("tier-badge")
    expect(badge).to_have_text("delayed reply")
    expect(badge).to_have_attribute("title", "Generated via Sonnet (Message Batches)")
    expect(reply.get_by_test_id("degraded-reason")).to_contain_text("Queued at ")
    expect(reply.get_by_test_id("degraded-reason")).to_contain_text("answered via Sonnet")
    expect(reply.get_by_test_id("reply-body")).not_to_be_empty()
    expect(page).to_have_title(f"Reply arrived · {title}")
    expect(page.get_by_test_id("composer-queued")).to_be_hidden()
    page.evaluate(
        """() => {
          Object.defineProperty(document, "hidden", { configurable: true, get: () => false });
          document.dispatchEvent(new Event("visibilitychange"));
        }"""
    )
    expect(page).to_have_title(title)

    page.reload()
    reply = last_reply(page)
    expect(reply).to_have_attribute("data-state", "done")
    expect(reply.get_by_test_id("tier-badge")).to_have_text("delayed reply")
    expect(page.locator("#send")).to_be_enabled()


def test_cancel_withdraws_a_queued_message(page: Page, queue_app: LiveApp) -> None:
    queue_app.set_profile(SONNET, batch_delay_s=60)
    all_down(queue_app)
    page.goto(queue_app.url)
    send(page, "Cancel me")
    reply = last_reply(page)
    expect(reply).to_have_attribute("data-state", "queued", timeout=LAND_MS)
    reply.get_by_test_id("cancel-queued").click()
    reply = wait_done(page, "stopped")
    expect(reply.get_by_test_id("reply-note")).to_have_text(QUEUE_CANCELLED_NOTE)
    expect(reply.get_by_test_id("tier-badge")).to_have_count(0)
    expect(page.get_by_test_id("composer-queued")).to_be_hidden()
    queue_app.clear_faults()
    send(page, "And now?")
    expect(last_reply(page)).to_have_attribute("data-state", "done")
    expect(last_reply(page)).to_have_attribute("data-tier", "sonnet")
