"""Make the runbook's screenshots (docs/runbook-*.png): `.venv/bin/python docs/runbook_screenshots.py`.

What degraded mode looks like to users, taken from the demo app as an on-call engineer would see
it: `understudy serve` on the simulator (a temporary data folder, a free loopback port), tiers
taken down with the page's own "Simulate outage" panel, Debian's Chromium driven by Playwright.

- runbook-badge-fast-mode.png        Sonnet overloaded: Haiku answers, badge and sentence
- runbook-badge-fallback-provider.png  Sonnet and Haiku overloaded: GPT-5.5 answers
- runbook-banner.png                 Sonnet's breaker open: the banner over the conversation
- runbook-queued.png                 All tiers down: the reply is queued (badge, sentence, Cancel)
- runbook-delayed-reply.png          the queued reply landed: the "delayed reply" badge
- runbook-all-down-error.png         All tiers down on a chain without [deferral]: the error
- runbook-admin-drills.png           the admin dashboard's drills section, a drill overdue

The queued reply is held until its screenshot is taken by refusing the simulator's Message
Batches (a fault the panel does not set), then let through. Every step waits on the page, with an
upper bound; nothing sleeps a fixed time.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

DOCS = Path(__file__).resolve().parent
CHAIN = DOCS.parent / "web" / "chain.toml"
SONNET = "claude-sonnet-4-6"
PASSWORD = "runbook-screenshots"
WAIT_MS = 30_000
PROFILE = {"first_token_s": 0.2, "tokens_per_s": 120, "reply_tokens": 36, "batch_delay_s": 1}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def demo_server(chain_text: str | None = None) -> Iterator[str]:
    """`understudy serve` in demo mode (no keys), on the default chain or on ``chain_text``."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as data:
        env = {k: v for k, v in os.environ.items() if not k.startswith("UNDERSTUDY_")}
        for key in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY"):
            env.pop(key, None)
        env.update(UNDERSTUDY_DATA_DIR=data, UNDERSTUDY_ADMIN_PASSWORD=PASSWORD)
        if chain_text is not None:
            chain = Path(data) / "chain.toml"
            chain.write_text(chain_text)
            env["UNDERSTUDY_CHAIN"] = str(chain)
        script = Path(sys.executable).parent / "understudy"
        server = subprocess.Popen(
            [str(script), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("understudy serve did not start")
                time.sleep(0.2)
            httpx.post(f"{url}/_sim/models", json={"model": "*", **PROFILE}).raise_for_status()
            yield url
        finally:
            server.terminate()
            server.wait(15)


def send(page: Page, text: str) -> Locator:
    """Send a message; the new reply, once it has settled in ``state``'s sense (see callers)."""
    count = page.get_by_test_id("assistant-message").count()
    box = page.get_by_role("textbox", name="Message", exact=True)
    box.fill(text)
    box.press("Enter")
    replies = page.get_by_test_id("assistant-message")
    expect(replies).to_have_count(count + 1, timeout=WAIT_MS)
    return replies.last


def outage(page: Page, tier: str, mode: str) -> None:
    """Press a button of the outage panel: ``mode`` is its label ("overloaded", "healthy again")."""
    panel = page.get_by_test_id(f"outage-{tier}")
    panel.get_by_role("button", name=mode, exact=True).click()
    pressed = panel.get_by_role("button", name=mode, exact=True)
    expect(pressed).to_have_attribute("aria-pressed", "true", timeout=WAIT_MS)


def reset(page: Page) -> None:
    page.get_by_test_id("outage-reset").click()
    expect(page.get_by_test_id("outage-count")).to_have_text("all healthy", timeout=WAIT_MS)


def shot(target: Locator | Page, name: str) -> None:
    target.screenshot(path=str(DOCS / name), animations="disabled")
    print(f"wrote docs/{name}")


def new_page(browser: Browser) -> Page:
    return browser.new_page(viewport={"width": 1000, "height": 680}, color_scheme="light")


def badges_banner_and_queue(browser: Browser, url: str) -> None:
    page = new_page(browser)
    page.goto(url)
    outage(page, "sonnet", "overloaded")
    reply = send(page, "What does an understudy do?")
    expect(reply).to_have_attribute("data-state", "done", timeout=WAIT_MS)
    expect(reply.get_by_test_id("tier-badge")).to_have_text("fast mode (smaller model)")
    shot(reply, "runbook-badge-fast-mode.png")

    outage(page, "haiku", "overloaded")
    reply = send(page, "And when the understudy is ill too?")
    expect(reply).to_have_attribute("data-state", "done", timeout=WAIT_MS)
    expect(reply.get_by_test_id("tier-badge")).to_have_text("fallback provider")
    shot(reply, "runbook-badge-fallback-provider.png")

    # Sonnet's breaker opens after a few failed tries (min_calls 5, two tries a turn); a page
    # opened while it is open shows the banner at once.
    outage(page, "haiku", "healthy again")
    banner = page.get_by_test_id("degraded-banner")
    for attempt in range(10):
        reply = send(page, f"Is Sonnet back yet? ({attempt + 1})")
        expect(reply).to_have_attribute("data-state", "done", timeout=WAIT_MS)
        page.reload()
        if banner.count():
            break
    expect(banner).to_be_visible()
    shot(page, "runbook-banner.png")

    # Every tier down, batches refused for now: the reply is queued and stays queued.
    reset(page)
    page.get_by_role("link", name="New chat").first.click()
    no_batches = httpx.post(
        f"{url}/_sim/faults",
        json={"model": SONNET, "kind": "status", "status": 529, "api": "batches"},
    )
    no_batches.raise_for_status()
    page.get_by_test_id("outage-all-down").click()
    expect(page.get_by_test_id("outage-count")).not_to_have_text("all healthy", timeout=WAIT_MS)
    reply = send(page, "Summarise the plot of Hamlet in three lines.")
    expect(reply).to_have_attribute("data-state", "queued", timeout=WAIT_MS)
    expect(page.get_by_test_id("composer-queued")).to_be_visible()
    shot(page, "runbook-queued.png")

    httpx.delete(f"{url}/_sim/faults/{no_batches.json()['id']}").raise_for_status()
    expect(reply).to_have_attribute("data-state", "done", timeout=WAIT_MS)
    expect(reply.get_by_test_id("tier-badge")).to_have_text("delayed reply")
    shot(reply, "runbook-delayed-reply.png")
    reset(page)

    admin = new_page(browser)
    admin.goto(f"{url}/admin/login")
    admin.get_by_label("Password").fill(PASSWORD)
    admin.get_by_role("button", name="Log in").click()
    expect(admin.get_by_test_id("drill-overdue")).to_be_visible(timeout=WAIT_MS)
    shot(admin.locator(".admin-drills"), "runbook-admin-drills.png")
    admin.close()
    page.close()


def all_down_error(browser: Browser, url: str) -> None:
    page = new_page(browser)
    page.goto(url)
    page.get_by_test_id("outage-all-down").click()
    expect(page.get_by_test_id("outage-count")).not_to_have_text("all healthy", timeout=WAIT_MS)
    reply = send(page, "Is anyone there?")
    expect(reply).to_have_attribute("data-state", "failed", timeout=WAIT_MS)
    expect(reply.get_by_test_id("reply-error")).to_be_visible()
    shot(reply, "runbook-all-down-error.png")
    page.close()


def main() -> None:
    chain = CHAIN.read_text()
    no_deferral, found, _ = chain.partition("\n[deferral]")
    assert found, f"{CHAIN} has no [deferral] table to leave out"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox"]
        )
        with demo_server() as url:
            badges_banner_and_queue(browser, url)
        with demo_server(no_deferral + "\n") as url:
            all_down_error(browser, url)
        browser.close()


if __name__ == "__main__":
    main()
