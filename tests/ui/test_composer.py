"""The composer and the conversation list: keys, refusals that keep the text, rename, delete, phone."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from playwright.sync_api import Page, expect

from web.db.sidebar import LIST_LIMIT

from .helpers import SONNET, composer, conversation_url, replies, send, wait_done
from support.console import ConsoleErrors

if TYPE_CHECKING:
    from tests.conftest import LiveApp


def test_enter_sends_shift_enter_adds_a_line_and_ime_enter_does_not_send(
    page: Page, live_app: LiveApp
) -> None:
    page.goto(live_app.url)
    box = composer(page)
    box.fill("line one")
    box.press("Shift+Enter")
    box.type("line two")
    expect(box).to_have_value("line one\nline two")
    # An IME confirming a candidate sends Enter with isComposing: that must not send.
    box.evaluate(
        "el => el.dispatchEvent(new KeyboardEvent('keydown', "
        "{key: 'Enter', isComposing: true, bubbles: true, cancelable: true}))"
    )
    expect(box).to_have_value("line one\nline two")
    box.press("Enter")
    conversation_url(page)
    wait_done(page)
    expect(page.get_by_test_id("user-message")).to_have_count(1)
    expect(page.get_by_test_id("user-message")).to_contain_text("line one\nline two")
    expect(composer(page)).to_have_value("")
    assert len(live_app.requests(SONNET)) == 1


def test_send_is_disabled_while_a_reply_streams(page: Page, live_app: LiveApp) -> None:
    live_app.set_profile(SONNET, tokens_per_s=20.0)
    page.goto(live_app.url)
    send(page, "first")
    conversation_url(page)
    send_button = page.get_by_role("button", name="Send")
    expect(send_button).to_be_disabled()
    composer(page).fill("typed while waiting")
    composer(page).press("Enter")
    wait_done(page)
    expect(send_button).to_be_enabled()
    expect(composer(page)).to_have_value("typed while waiting")  # not sent, not lost
    expect(replies(page)).to_have_count(1)


def test_refused_messages_keep_the_text_and_say_why(
    page: Page, live_app: LiveApp, console_errors: ConsoleErrors
) -> None:
    console_errors.allow_failed("/c", status=422)  # blank
    console_errors.allow_failed("/c", status=413)  # too long
    page.goto(live_app.url)
    send(page, "   ")
    expect(page.get_by_test_id("flash")).to_contain_text("Type a message")
    too_long = "x" * 32_001
    composer(page).fill(too_long)
    expect(page.locator("#composer-hint")).to_contain_text("Too long")
    composer(page).press("Enter")
    expect(page.get_by_test_id("flash")).to_contain_text("32,001")
    expect(composer(page)).to_have_value(too_long)
    expect(page.get_by_test_id("conversation-list")).to_contain_text("No conversations yet")
    composer(page).fill("fine now")
    composer(page).press("Enter")
    wait_done(page)
    expect(page.get_by_test_id("flash")).to_be_hidden()


def test_server_errors_in_a_conversation_keep_the_text(
    page: Page, live_app: LiveApp, console_errors: ConsoleErrors
) -> None:
    console_errors.allow_failed("/c/[0-9a-f]{32}/messages", status=413)
    page.goto(live_app.url)
    send(page, "hello")
    wait_done(page)
    composer(page).fill("y" * 32_001)
    composer(page).press("Enter")
    expect(page.get_by_test_id("flash")).to_contain_text("the limit is 32,000")
    expect(composer(page)).to_have_value("y" * 32_001)
    expect(page.get_by_test_id("user-message")).to_have_count(1)


def test_new_rename_and_delete_conversations(
    page: Page, live_app: LiveApp, console_errors: ConsoleErrors
) -> None:
    console_errors.allow_failed("/c/[0-9a-f]{32}", status=404)  # the deleted one, opened again
    page.goto(live_app.url)
    send(page, "First chat")
    first = conversation_url(page)
    wait_done(page)
    page.get_by_role("link", name="+ New chat").click()
    send(page, "Second chat")
    second = conversation_url(page)
    assert second != first
    wait_done(page)
    listing = page.get_by_test_id("conversation-list")
    expect(listing.get_by_role("link")).to_have_text(["Second chat", "First chat"])
    expect(listing.get_by_role("link", name="Second chat")).to_have_attribute(
        "aria-current", "page"
    )
    expect(page).to_have_title("Second chat · Understudy")

    page.get_by_text("Rename or delete").click()
    page.get_by_label("Name").fill("Renamed chat")
    page.get_by_role("button", name="Rename", exact=True).click()
    expect(page.get_by_role("heading", name="Renamed chat")).to_be_visible()
    expect(page).to_have_title("Renamed chat · Understudy")  # the tab follows the rename
    expect(listing.get_by_role("link")).to_have_text(["Renamed chat", "First chat"])

    page.get_by_text("Rename or delete").click()
    page.get_by_role("button", name="Delete conversation").click()
    expect(page).to_have_url(f"{live_app.url}/?deleted={second.rsplit('/', 1)[1]}")  # with Undo
    expect(page.get_by_test_id("conversation-list").get_by_role("link")).to_have_text(
        ["First chat"]
    )
    response = page.goto(second)
    assert response is not None and response.status == 404


def test_usable_on_a_390px_phone(page: Page, live_app: LiveApp) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(live_app.url)
    expect(page.get_by_test_id("outage-panel")).to_be_hidden()  # in the closed menu
    send(page, "Hi from a phone")
    reply = wait_done(page)
    expect(reply).to_be_visible()
    expect(page.get_by_role("button", name="Send")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    box = reply.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    page.get_by_role("button", name="Conversations").click()
    expect(page.get_by_test_id("conversation-list")).to_be_visible()
    expect(page.get_by_test_id("outage-panel")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("conversation-list")).to_be_hidden()


def test_show_older_loads_the_next_page_of_conversations_in_place(
    page: Page, live_app: LiveApp
) -> None:
    page.goto(live_app.url)
    send(page, "the newest")
    newest = conversation_url(page).rsplit("/", 1)[1]
    wait_done(page)
    with sqlite3.connect(live_app.data_dir / "understudy.db") as db:
        (owner,) = db.execute("SELECT owner FROM conversations WHERE id = ?", (newest,)).fetchone()
        db.executemany(
            "INSERT INTO conversations (id, owner, title, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?)",
            [
                (
                    f"{i:031x}f",  # ids no other test uses
                    owner,
                    f"older {i}",
                    "2026-01-01 00:00:00.000000",
                    f"2026-01-01 {i // 60:02d}:{i % 60:02d}:00.000000",
                )
                for i in range(LIST_LIMIT)
            ],
        )
    page.goto(live_app.url)
    links = page.get_by_test_id("conversation-list").get_by_role("link")
    expect(links).to_have_count(LIST_LIMIT + 1)  # the page, and "Show older"
    page.get_by_test_id("show-older").click()
    expect(links).to_have_count(LIST_LIMIT + 1)  # every conversation, and no more link
    expect(page.get_by_test_id("show-older")).to_have_count(0)
    expect(links.last).to_have_text("older 0")
    assert page.url == f"{live_app.url}/"  # loaded in place


def test_one_conversation_too_many_says_when_to_try_again_and_keeps_the_text(
    page: Page, live_app: LiveApp, console_errors: ConsoleErrors
) -> None:
    console_errors.allow_failed("/c", status=429)
    page.goto(live_app.url)
    token = page.locator('input[name="csrf_token"]').first.input_value()
    for i in range(20):  # the default UNDERSTUDY_NEW_CHATS_PER_MINUTE
        reply = page.request.post(
            f"{live_app.url}/c",
            form={"content": f"chat {i}"},
            headers={"X-CSRF-Token": token, "HX-Request": "true"},
        )
        assert reply.status == 200
    send(page, "one too many")
    expect(page.locator("#flash")).to_contain_text("Try again in")
    expect(page.locator("#flash")).to_contain_text("your message is still in the box")
    expect(composer(page)).to_have_value("one too many")
    assert page.url == f"{live_app.url}/"
