"""Delete offers Undo: the conversation is hidden at once, comes back whole with Undo, and is gone
for good once the offer ends. The offer's timer runs on Playwright's clock, never on the wall's."""

from __future__ import annotations

from typing import TYPE_CHECKING

from playwright.sync_api import Page, expect

from web.trash import UNDO_S

from .helpers import SONNET, conversation_url, replies, send, wait_done
from support.browser import LogDB

if TYPE_CHECKING:
    from tests.conftest import LiveApp


def _start(page: Page, live_app: LiveApp, text: str) -> str:
    page.clock.install()  # runs like the real clock until paused
    page.goto(live_app.url)
    send(page, text)
    return conversation_url(page).rsplit("/", 1)[1]


def _delete(page: Page, live_app: LiveApp, conversation: str) -> None:
    """Delete from the conversation's page, with the clock paused: the offer waits for the test."""
    page.clock.pause_at(page.evaluate("Date.now()") + 1000)
    page.get_by_text("Rename or delete").click()
    page.get_by_role("button", name="Delete conversation").click()
    expect(page).to_have_url(f"{live_app.url}/?deleted={conversation}")


def _chat_then_delete(page: Page, live_app: LiveApp, text: str) -> str:
    """A finished conversation, deleted; returns its id."""
    conversation = _start(page, live_app, text)
    wait_done(page)
    _delete(page, live_app, conversation)
    return conversation


def _rows(live_app: LiveApp, conversation: str) -> list[tuple[str, object]]:
    db = LogDB(live_app.database_url)
    rows = db.query("SELECT id, deleted_at FROM conversations WHERE id = ?", conversation)
    return [(row["id"], row["deleted_at"]) for row in rows]


def test_undo_brings_the_conversation_back_whole(page: Page, live_app: LiveApp) -> None:
    conversation = _chat_then_delete(page, live_app, "Keep me")
    url = f"{live_app.url}/c/{conversation}"
    offer = page.get_by_test_id("undo")
    expect(offer).to_contain_text("Deleted “Keep me”.")
    expect(page.locator("#status")).to_have_text(
        f"Deleted “Keep me”. Undo is available for {UNDO_S} seconds."
    )
    listing = page.get_by_test_id("conversation-list")
    expect(listing.get_by_role("link")).to_have_count(0)
    assert page.request.get(url).status == 404  # hidden everywhere meanwhile...
    [(_, deleted_at)] = _rows(live_app, conversation)
    assert deleted_at is not None  # ...but kept for the undo

    page.clock.run_for((UNDO_S - 1) * 1000)
    offer.get_by_role("button", name="Undo").click()
    expect(page).to_have_url(url)
    expect(page.get_by_test_id("user-message")).to_contain_text("Keep me")
    expect(replies(page)).to_have_count(1)
    expect(replies(page)).to_have_attribute("data-state", "done")
    expect(listing.get_by_role("link", name="Keep me")).to_have_attribute("aria-current", "page")
    page.clock.run_for(60_000)  # the offer went with its page: nothing purges it later
    assert _rows(live_app, conversation) == [(conversation, None)]
    assert page.request.get(url).status == 200


def test_without_undo_it_is_gone_for_good_when_the_offer_ends(
    page: Page, live_app: LiveApp
) -> None:
    conversation = _chat_then_delete(page, live_app, "Forget me")
    offer = page.get_by_test_id("undo")
    expect(offer).to_be_visible()
    page.clock.run_for((UNDO_S - 1) * 1000)
    expect(offer).to_be_visible()
    assert len(_rows(live_app, conversation)) == 1
    page.clock.run_for(1000)
    expect(offer).to_have_count(0)  # the purge answered before its element went
    assert _rows(live_app, conversation) == []
    db = LogDB(live_app.database_url)
    assert db.query("SELECT id FROM turns WHERE conversation_id = ?", conversation) == []
    assert db.query("SELECT id FROM messages WHERE conversation_id = ?", conversation) == []
    token = page.locator('input[name="csrf_token"]').first.input_value()
    late = page.request.post(
        f"{live_app.url}/c/{conversation}/restore", headers={"X-CSRF-Token": token}
    )
    assert late.status == 404
    assert "nothing to undo" in late.text()


def test_the_offer_waits_while_pointed_at_and_dismiss_deletes_at_once(
    page: Page, live_app: LiveApp
) -> None:
    conversation = _chat_then_delete(page, live_app, "Hover me")
    offer = page.get_by_test_id("undo")
    offer.hover()
    page.clock.run_for(3 * UNDO_S * 1000)
    expect(offer).to_be_visible()  # paused while the pointer is on it
    assert len(_rows(live_app, conversation)) == 1
    offer.get_by_role("button", name="Dismiss (delete for good now)").click()
    expect(offer).to_have_count(0)
    assert _rows(live_app, conversation) == []


def test_deleting_a_conversation_stops_its_reply(page: Page, live_app: LiveApp) -> None:
    live_app.set_profile(SONNET, tokens_per_s=2.0)  # still writing when Delete is pressed
    conversation = _start(page, live_app, "Long answer please")
    expect(replies(page)).to_have_attribute("data-state", "streaming")
    _delete(page, live_app, conversation)
    db = LogDB(live_app.database_url)
    assert db.turn(db.turn_of(conversation))["status"] == "stopped"
    page.get_by_test_id("undo").get_by_role("button", name="Undo").click()
    expect(replies(page)).to_have_attribute("data-state", "stopped")
    expect(replies(page).get_by_test_id("reply-note")).to_have_text("Stopped.")
