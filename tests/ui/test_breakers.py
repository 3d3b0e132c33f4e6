"""The circuit breakers as a user and an admin see them, on a server of their own whose primary's
breaker opens after one failure and stays open 3 s: the banner comes and goes without a reload,
and the admin page shows each tier's breaker."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import SONNET, TEST_CHAIN, LiveApp, start_live_app
from playwright.sync_api import Page, expect

from .helpers import replies, send, wait_done

#: The banner is refreshed every 10 s; it must show (and go) within that and a margin.
BANNER_S = 15_000
QUICK = "breaker = { min_calls = 1, failure_rate = 0.5, open_s = 3, max_open_s = 3 }"


@pytest.fixture
def breaker_app() -> Iterator[LiveApp]:
    base = Path(tempfile.mkdtemp(prefix="understudy-breakers-"))
    chain = TEST_CHAIN.replace(
        "breaker = { min_calls = 1000000, open_s = 0.001, max_open_s = 0.001 }", QUICK
    )
    assert chain.count(QUICK) == 3
    app = start_live_app(base, chain_text=chain)
    try:
        app.reset()
        yield app
    finally:
        app.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_the_banner_follows_the_primarys_breaker(page: Page, breaker_app: LiveApp) -> None:
    page.goto(breaker_app.url)
    banner = page.get_by_test_id("degraded-banner")
    expect(banner).to_have_count(0)
    send(page, "First, all is well")
    wait_done(page)
    breaker_app.set_fault(SONNET, "status", status=529)
    send(page, "Now Sonnet is down")
    expect(replies(page)).to_have_count(2)
    reply = wait_done(page)
    expect(reply).to_have_attribute("data-tier", "haiku")
    expect(banner).to_have_text(
        "Sonnet is unavailable right now: replies come from Haiku (fast mode).", timeout=BANNER_S
    )  # without a reload
    breaker_app.clear_faults()
    # Sonnet's breaker stays open 3 s, then lets one reply probe it: ask until Sonnet answers.
    for attempt in range(40):
        count = replies(page).count()
        send(page, f"Is Sonnet back? ({attempt})")
        expect(replies(page)).to_have_count(count + 1)
        reply = wait_done(page)
        if reply.get_attribute("data-tier") == "sonnet":
            break
        expect(reply.get_by_test_id("degraded-reason")).to_contain_text(
            "Sonnet has been unavailable since"
        )
    else:
        raise AssertionError("Sonnet never answered again")
    expect(banner).to_have_count(0, timeout=BANNER_S)  # gone, again without a reload


def test_the_admin_page_shows_each_breaker(page: Page, breaker_app: LiveApp) -> None:
    breaker_app.set_fault(SONNET, "status", status=529)
    page.goto(breaker_app.url)
    send(page, "Sonnet is down")
    wait_done(page)
    page.goto(f"{breaker_app.url}/admin")
    page.get_by_label("Password").fill(breaker_app.admin_password)
    page.get_by_role("button", name="Log in").click()
    row = page.get_by_test_id("breaker-sonnet")
    expect(row.get_by_test_id("breaker-state")).to_have_text("open")
    expect(row).to_contain_text("overloaded")
    expect(page.get_by_test_id("breaker-haiku").get_by_test_id("breaker-state")).to_have_text(
        "closed"
    )
