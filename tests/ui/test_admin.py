"""The admin page in Chromium against the live app: login, then degraded turns and why."""

from __future__ import annotations

import re

from conftest import SONNET, LiveApp
from playwright.sync_api import Page, expect

from support.browser import Browser, LogDB
from support.console import ConsoleErrors


def make_turns(live_app: LiveApp) -> tuple[str, str]:
    """A turn the primary answered and one Haiku answered because Sonnet was overloaded."""
    tab = Browser(live_app.url)
    db = LogDB(live_app.database_url)
    try:
        primary = db.turn_of(tab.new_conversation("Answer from the primary, please"))
        assert db.wait_final(primary)["status"] == "ok"
        live_app.set_fault(SONNET, "status", status=529)
        degraded = db.turn_of(tab.new_conversation("Sonnet is overloaded now"))
        assert db.wait_final(degraded)["status"] == "degraded"
    finally:
        tab.close()
    return primary, degraded


def test_admin_needs_login_and_lists_the_degraded_turn_with_its_reason(
    live_app: LiveApp, page: Page, console_errors: ConsoleErrors
) -> None:
    console_errors.allow_failed("/admin/login", status=401)  # the wrong password, on purpose
    primary, degraded = make_turns(live_app)

    page.goto(f"{live_app.url}/admin")
    expect(page).to_have_url(re.compile(r"/admin/login\?next="))
    expect(page.get_by_role("heading", name="Admin login")).to_be_visible()

    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_test_id("login-error")).to_have_text("Wrong password.")
    expect(page).to_have_url(re.compile(r"/admin/login"))

    page.get_by_label("Password").fill(live_app.admin_password)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{live_app.url}/admin")

    row = page.locator(f'[data-testid="degraded-turn"][data-turn-id="{degraded}"]')
    expect(row).to_be_visible()
    expect(row).to_have_attribute("data-tier", "haiku")
    expect(row.get_by_test_id("turn-why")).to_contain_text("sonnet: overloaded 529")
    expect(page.locator(f'[data-turn-id="{primary}"]')).to_have_count(0)
    expect(page.get_by_test_id("tier-mix-chart").first).to_be_visible()

    row.get_by_role("link", name=degraded[:8]).click()
    expect(page).to_have_url(f"{live_app.url}/admin/turns/{degraded}")
    attempts = page.get_by_test_id("attempt")
    expect(attempts.last).to_have_attribute("data-tier", "haiku")
    expect(attempts.first).to_have_attribute("data-outcome", "failed")

    page.get_by_test_id("admin-logout").click()
    expect(page).to_have_url(f"{live_app.url}/admin/login")
    page.goto(f"{live_app.url}/admin")
    expect(page).to_have_url(re.compile(r"/admin/login"))
