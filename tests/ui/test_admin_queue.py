"""The demo's "All tiers down", end to end: a reply is queued, the admin page shows it in the
queue, it lands, and the admin lists it as a delayed reply with its wait.

The reply cannot land before the test has looked at the queue: until then the simulator refuses
to create batches (a fault on its Message Batches API), so the job waits, whatever the machine's
speed; the test then lifts that fault and the next submission goes through. The admin reads
the page from a browser of their own (an admin login in the chat's browser would move its
conversations to a new session, which is not what this test is about)."""

from __future__ import annotations

import re
import time

import httpx
from conftest import LiveApp
from playwright.sync_api import Browser, Page, expect

from web.routes.demo import ALL_DOWN_LABEL

from .helpers import last_reply, send
from support.browser import LogDB
from support.console import ConsoleErrors
from support.queue_app import SONNET

LAND_MS = 20_000
"""An upper bound for the batch and the worker's polls; usually a few seconds."""
DURATION = re.compile(r"^\d+ (s|min|h|d)( \d+ (s|min|h))?$")


def log_in(page: Page, app: LiveApp) -> None:
    page.goto(f"{app.url}/admin/login")
    page.get_by_label("Password").fill(app.admin_password)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{app.url}/admin")


def wait_refused(db: LogDB, turn_id: str, timeout: float = 15.0) -> None:
    """Until the worker has tried to submit the job and been refused."""
    deadline = time.monotonic() + timeout
    while not any(
        (a["tier"], a["outcome"]) == ("deferral", "failed") for a in db.attempts(turn_id)
    ):
        assert time.monotonic() < deadline, f"no refused submission of turn {turn_id}"
        time.sleep(0.05)


def test_all_tiers_down_queues_a_reply_and_the_admin_follows_it(
    page: Page, browser: Browser, queue_app: LiveApp, console_errors: ConsoleErrors
) -> None:
    queue_app.set_profile(SONNET, batch_delay_s=0.2)
    no_batches = queue_app.set_fault(SONNET, "status", status=529, api="batches")
    page.goto(queue_app.url)
    page.get_by_role("button", name=ALL_DOWN_LABEL).click()
    expect(page.get_by_test_id("outage-count")).to_have_text("3 down")
    send(page, "Queue me from the outage panel")
    reply = last_reply(page)
    expect(reply).to_have_attribute("data-state", "queued", timeout=LAND_MS)
    turn = reply.get_attribute("data-turn")
    assert turn is not None

    admins_browser = browser.new_context()
    console_errors.watch(admins_browser)
    admin = admins_browser.new_page()
    log_in(admin, queue_app)
    expect(admin.get_by_test_id("queue-depth")).to_have_text("1")
    expect(admin.get_by_test_id("queue-oldest")).to_have_text(re.compile(r" ago$"))
    admin.get_by_role("link", name="1 open job").click()
    row = admin.locator(f'[data-testid="queued-turn"][data-turn-id="{turn}"]')
    expect(row).to_be_visible()
    expect(row.get_by_test_id("turn-age")).to_have_text(DURATION)
    expect(row).to_have_attribute("data-job-state", "waiting")

    wait_refused(LogDB(queue_app.database_url), turn)
    admin.goto(f"{queue_app.url}/admin/turns/{turn}")
    expect(admin.get_by_test_id("job-state")).to_have_text("waiting")
    expect(admin.get_by_test_id("job-last-error")).not_to_have_text("-")
    expect(admin.get_by_test_id("job-wait")).to_have_text(re.compile(r" so far$"))

    httpx.delete(f"{queue_app.url}/_sim/faults/{no_batches['id']}").raise_for_status()
    expect(reply).to_have_attribute("data-state", "done", timeout=LAND_MS)
    expect(reply.get_by_test_id("tier-badge")).to_have_text("delayed reply")

    admin.goto(f"{queue_app.url}/admin?kind=delayed")
    row = admin.locator(f'[data-testid="delayed-turn"][data-turn-id="{turn}"]')
    expect(row.get_by_test_id("turn-wait")).to_have_text(DURATION)
    expect(admin.get_by_test_id("queue-oldest")).to_have_text("empty")
    row.get_by_role("link", name=turn[:8]).click()
    expect(admin.get_by_test_id("job-state")).to_have_text("done")
    expect(admin.get_by_test_id("job-unavailable")).to_have_text("Sonnet, Haiku, GPT-5.5")
    # The refused submissions are failed attempts of the deferral, then one went through.
    attempts = admin.locator('[data-testid="attempt"][data-tier="deferral"]')
    expect(attempts.first).to_have_attribute("data-outcome", "failed")
    expect(attempts.last).to_have_attribute("data-outcome", "ok")
    expect(admin.locator('[data-testid="attempt"][data-outcome="submitted"]')).to_have_count(1)
    admins_browser.close()
