"""The sidebar marks a conversation whose reply is being written, and one whose reply landed while
the user was elsewhere ("new"), without a reload; opening it clears the mark for good."""

from __future__ import annotations

from typing import TYPE_CHECKING

from playwright.sync_api import Locator, Page, expect

from web.routes.sidebar import POLL_S

from .helpers import SONNET, conversation_url, last_reply, send, wait_done
from support.browser import LogDB

if TYPE_CHECKING:
    from tests.conftest import LiveApp

SLOW = 2.0
"""Tokens per second: a 40-token reply takes 20 s, so it is still being written whatever the
machine does meanwhile; the tests end it themselves, with Stop."""


def _item(page: Page, conversation: str) -> Locator:
    return page.locator(f'#conversation-list li[data-conversation="{conversation}"]')


def _stop_from_another_tab(page: Page, live_app: LiveApp, conversation: str) -> None:
    db = LogDB(live_app.database_url)
    turn = db.turn_of(conversation)
    token = page.locator('input[name="csrf_token"]').first.input_value()
    stopped = page.request.post(
        f"{live_app.url}/c/{conversation}/turns/{turn}/stop",
        headers={"X-CSRF-Token": token, "HX-Request": "true"},
    )
    assert stopped.status == 200


def test_writing_then_new_while_elsewhere_then_seen_once_opened(
    page: Page, live_app: LiveApp
) -> None:
    live_app.set_profile(SONNET, tokens_per_s=SLOW)
    page.goto(live_app.url)
    send(page, "Slow one")
    url = conversation_url(page)
    conversation = url.rsplit("/", 1)[1]
    item = _item(page, conversation)
    link = item.get_by_role("link", name="Slow one")
    expect(item).to_have_attribute("data-activity", "writing")
    expect(link).to_have_accessible_description("a reply is being written")
    expect(item.get_by_test_id("conversation-mark")).to_contain_text("writing…")

    page.get_by_role("link", name="+ New chat").click()
    expect(page).to_have_url(f"{live_app.url}/")
    expect(item).to_have_attribute("data-activity", "writing")
    _stop_from_another_tab(page, live_app, conversation)  # it lands while the user is here
    expect(item).to_have_attribute("data-activity", "new")  # learnt by polling, not a reload
    expect(link).to_have_accessible_description("new reply")
    expect(item.get_by_test_id("conversation-mark")).to_contain_text("new")

    link.click()
    expect(page).to_have_url(url)
    expect(item).to_have_attribute("data-activity", "idle")
    expect(item.get_by_test_id("conversation-mark")).to_have_count(0)
    page.get_by_role("link", name="+ New chat").click()
    expect(page).to_have_url(f"{live_app.url}/")
    expect(item).to_have_attribute("data-activity", "idle")  # seen for good


def test_a_finished_reply_started_elsewhere_is_new(page: Page, live_app: LiveApp) -> None:
    page.goto(live_app.url)
    token = page.locator('input[name="csrf_token"]').first.input_value()
    made = page.request.post(  # another tab of this browser starts a conversation
        f"{live_app.url}/c",
        form={"content": "From the other tab"},
        headers={"X-CSRF-Token": token, "HX-Request": "true"},
    )
    conversation = made.headers["hx-redirect"].rsplit("/", 1)[1]
    page.reload()  # it shows up in the list (writing, or already answered)
    expect(_item(page, conversation)).to_have_attribute("data-activity", "new")
    page.get_by_role("link", name="From the other tab").click()
    wait_done(page)
    expect(_item(page, conversation)).to_have_attribute("data-activity", "idle")


def test_a_reply_watched_to_its_end_is_not_new(page: Page, live_app: LiveApp) -> None:
    live_app.set_profile(SONNET, tokens_per_s=SLOW)
    page.goto(live_app.url)
    send(page, "Watch me")
    conversation = conversation_url(page).rsplit("/", 1)[1]
    item = _item(page, conversation)
    expect(item).to_have_attribute("data-activity", "writing")
    last_reply(page).get_by_role("button", name="Stop").click()
    wait_done(page, "stopped")
    # The list is refreshed when the reply lands here, and that refresh records it was seen.
    expect(item).to_have_attribute("data-activity", "idle")
    page.get_by_role("link", name="+ New chat").click()
    expect(page).to_have_url(f"{live_app.url}/")
    expect(item).to_have_attribute("data-activity", "idle")


def test_the_list_polls_only_while_a_reply_is_being_written(page: Page, live_app: LiveApp) -> None:
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))

    def polls() -> int:
        """/sidebar requests so far; a probe sent now arrives after any the page already sent."""
        page.evaluate("fetch('/healthz').then(r => r.status)")
        return sum("/sidebar" in url for url in urls)

    live_app.set_profile(SONNET, tokens_per_s=SLOW)
    page.clock.install()
    page.goto(live_app.url)
    send(page, "Poll me")
    conversation = conversation_url(page).rsplit("/", 1)[1]
    page.get_by_role("link", name="+ New chat").click()
    item = _item(page, conversation)
    expect(item).to_have_attribute("data-activity", "writing")
    page.clock.pause_at(page.evaluate("Date.now()") + 1000)
    with page.expect_response("**/sidebar?*"):
        page.clock.run_for(POLL_S * 1000)  # one poll per interval while it is being written
    _stop_from_another_tab(page, live_app, conversation)
    while item.get_attribute("data-activity") == "writing":
        with page.expect_response("**/sidebar?*"):
            page.clock.run_for(POLL_S * 1000)
    expect(item).to_have_attribute("data-activity", "new")
    before = polls()
    page.clock.run_for(30 * POLL_S * 1000)
    assert polls() == before  # nothing is being written: no more polling
