"""The demo's outage panel stays reachable: pinned under a long chat list, folded on request,
after the composer in Tab order; "All tiers down" takes every tier down and "Reset all" heals
every tier at once."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from playwright.sync_api import Page, expect

from web.db.sidebar import LIST_LIMIT
from web.routes.demo import ALL_DOWN_LABEL

from .helpers import composer, conversation_url, send, wait_done

if TYPE_CHECKING:
    from tests.conftest import LiveApp


def test_the_panel_comes_after_the_composer_in_tab_order(page: Page, live_app: LiveApp) -> None:
    page.goto(live_app.url)
    composer(page).focus()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Send")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.locator("#outage-panel > summary")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Reset all")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name=ALL_DOWN_LABEL)).to_be_focused()
    page.keyboard.press("Tab")
    expect(
        page.get_by_test_id("outage-sonnet").get_by_role("button", name="rate limited")
    ).to_be_focused()
    # DOM order, not a positive tabindex, puts it there.
    assert page.locator("[tabindex]:not([tabindex='0']):not([tabindex='-1'])").count() == 0


def test_a_long_list_scrolls_on_its_own_under_a_pinned_panel(page: Page, live_app: LiveApp) -> None:
    page.set_viewport_size({"width": 1280, "height": 720})
    page.goto(live_app.url)
    send(page, "one of many")
    newest = conversation_url(page).rsplit("/", 1)[1]
    wait_done(page)
    with sqlite3.connect(live_app.data_dir / "understudy.db") as db:
        (owner,) = db.execute("SELECT owner FROM conversations WHERE id = ?", (newest,)).fetchone()
        db.executemany(
            "INSERT INTO conversations (id, owner, title, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?)",
            [
                (f"{i:031x}e", owner, f"chat {i}", "2026-01-01 00:00:00", "2026-01-01 00:00:00")
                for i in range(LIST_LIMIT)
            ],
        )
    page.reload()
    listing = page.get_by_test_id("conversation-list")
    expect(listing.get_by_role("link")).to_have_count(LIST_LIMIT + 1)
    assert listing.evaluate("el => el.scrollHeight > el.clientHeight")  # it scrolls itself...
    reset = page.get_by_role("button", name="Reset all")
    expect(reset).to_be_in_viewport(ratio=1)  # ...and the panel stays on screen
    listing.evaluate("el => { el.scrollTop = el.scrollHeight; }")
    expect(listing.get_by_test_id("show-older")).to_be_in_viewport()
    expect(reset).to_be_in_viewport(ratio=1)
    assert page.evaluate("document.scrollingElement.scrollHeight <= innerHeight")

    summary = page.locator("#outage-panel > summary")
    summary.click()  # fold it: the list gets the room
    expect(reset).to_be_hidden()
    expect(page.get_by_test_id("outage-count")).to_have_text("all healthy")
    page.reload()
    expect(summary).to_be_in_viewport()
    expect(reset).to_be_hidden()  # stays folded
    summary.click()
    expect(reset).to_be_in_viewport(ratio=1)


def test_reset_all_heals_every_tier_at_once(page: Page, live_app: LiveApp) -> None:
    page.goto(live_app.url)
    for tier, mode in (("sonnet", "hang"), ("haiku", "rate limited"), ("openai", "overloaded")):
        row = page.get_by_test_id(f"outage-{tier}")
        row.get_by_role("button", name=mode).click()
        expect(row.get_by_role("button", name=mode)).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_test_id("outage-count")).to_have_text("3 down")
    assert len(live_app.faults()) == 3
    page.get_by_role("button", name="Reset all").click()
    expect(page.get_by_test_id("outage-count")).to_have_text("all healthy")
    expect(page.get_by_test_id("tier-state")).to_have_text(["healthy"] * 3)
    assert live_app.faults() == []
    send(page, "Who answers now?")
    expect(wait_done(page)).to_have_attribute("data-tier", "sonnet")


def test_all_tiers_down_then_reset_all(page: Page, live_app: LiveApp) -> None:
    page.goto(live_app.url)
    page.get_by_role("button", name=ALL_DOWN_LABEL).click()
    expect(page.get_by_test_id("outage-count")).to_have_text("3 down")
    expect(page.get_by_test_id("tier-state")).to_have_text(["overloaded"] * 3)
    for tier in ("sonnet", "haiku", "openai"):
        overloaded = page.get_by_test_id(f"outage-{tier}").get_by_role("button", name="overloaded")
        expect(overloaded).to_have_attribute("aria-pressed", "true")
    faults = live_app.faults()
    assert len(faults) == 3 and all("api" not in f for f in faults)  # the synchronous APIs only
    page.get_by_role("button", name="Reset all").click()
    expect(page.get_by_test_id("outage-count")).to_have_text("all healthy")
    assert live_app.faults() == []
