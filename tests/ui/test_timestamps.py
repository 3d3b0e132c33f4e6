"""Each message shows when it was written, in the reader's time zone and language: a time for
today, a date for other days, and the full date and time in its tooltip."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from playwright.sync_api import Browser, expect

from .helpers import conversation_url, send, wait_done

if TYPE_CHECKING:
    from tests.conftest import LiveApp

ZONE = "Asia/Kolkata"
"""UTC+5:30: its hours and its dates differ from UTC's."""
NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
ASKED = "2026-03-04 05:06:07.000000"  # 10:36:07 in Kolkata, the same day as NOW there
ANSWERED = "2025-12-31 22:00:00.000000"  # 1 January 2026, 03:30 in Kolkata; 31 December in UTC


def test_times_are_written_in_the_readers_zone(browser: Browser, live_app: LiveApp) -> None:
    context = browser.new_context(locale="en-GB", timezone_id=ZONE)
    page = context.new_page()
    page.goto(live_app.url)
    send(page, "What time is it?")
    conversation = conversation_url(page).rsplit("/", 1)[1]
    wait_done(page)
    send(page, "And now?")  # swapped in by htmx, not rendered with the page
    wait_done(page)
    sent = page.get_by_test_id("user-message").last.locator("time")
    expect(sent).to_have_attribute("datetime", re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"))
    expect(sent).not_to_contain_text("UTC")  # rewritten by the page, also when swapped in
    expect(sent).to_have_attribute("title", re.compile(r"\d\d:\d\d:\d\d"))

    with sqlite3.connect(live_app.data_dir / "understudy.db") as db:
        db.execute(
            "UPDATE messages SET created_at = ? WHERE conversation_id = ?", (ASKED, conversation)
        )
        db.execute(
            "UPDATE turns SET started_at = ? WHERE conversation_id = ?", (ANSWERED, conversation)
        )
    page.clock.set_fixed_time(NOW)
    page.reload()
    asked = page.get_by_test_id("user-message").first.locator("time")
    expect(asked).to_have_attribute("datetime", "2026-03-04T05:06:07Z")
    expect(asked).to_have_text("10:36")  # today, there
    expect(asked).to_have_attribute("title", re.compile(r"Wednesday.* 4 March 2026.* 10:36:07"))
    answered = page.get_by_test_id("assistant-message").first.locator("time")
    expect(answered).to_have_attribute("datetime", "2025-12-31T22:00:00Z")
    expect(answered).to_have_text("1 Jan")  # another day, this year, there
    expect(answered).to_have_attribute("title", re.compile(r"Thursday.* 1 January 2026.* 03:30:00"))
    context.close()
