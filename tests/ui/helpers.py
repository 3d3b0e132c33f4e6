"""Small steps shared by the browser tests."""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

SONNET = "claude-sonnet-4-6"
HAIKU = "claude-haiku-4-5-20251001"
OPENAI = "gpt-5.5"
AMBER = "rgb(217, 119, 6)"

expect.set_options(timeout=10_000)


def composer(page: Page) -> Locator:
    return page.get_by_role("textbox", name="Message", exact=True)


def send(page: Page, text: str) -> None:
    box = composer(page)
    box.fill(text)
    box.press("Enter")


def replies(page: Page) -> Locator:
    return page.get_by_test_id("assistant-message")


def last_reply(page: Page) -> Locator:
    return replies(page).last


def raw_text(reply: Locator) -> str:
    """The reply's markdown source (what Copy copies)."""
    return str(reply.locator("template").evaluate("t => t.content.textContent"))


def words(text: str) -> str:
    return " ".join(text.split())


def wait_done(page: Page, state: str = "done") -> Locator:
    reply = last_reply(page)
    expect(reply).to_have_attribute("data-state", state)
    return reply


def conversation_url(page: Page) -> str:
    expect(page).to_have_url(re.compile(r"/c/[0-9a-f]{32}$"))
    return page.url
