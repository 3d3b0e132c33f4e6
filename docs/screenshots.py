"""Make the README's screenshots: `.venv/bin/python docs/screenshots.py`.

Starts `understudy serve` on the simulator (a temporary data folder, a free loopback port), takes
tiers down through the simulator's control API, drives Debian's Chromium with Playwright, and
writes docs/screenshot-degraded.png (a reply from Haiku with its badge) and
docs/screenshot-waiting.png (the status line while Sonnet hangs).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import expect, sync_playwright

DOCS = Path(__file__).resolve().parent
SONNET = "claude-sonnet-4-6"
HAIKU = "claude-haiku-4-5-20251001"
PROMPT = "Why do understudies rehearse? Show me some code."


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as data:
        env = {k: v for k, v in os.environ.items() if not k.startswith("UNDERSTUDY_")}
        env.pop("ANTHROPIC_API_KEY", None)
        env.pop("OPENAI_API_KEY", None)
        env.update(UNDERSTUDY_DATA_DIR=data, UNDERSTUDY_ADMIN_PASSWORD="screenshots")
        script = Path(sys.executable).parent / "understudy"
        server = subprocess.Popen(
            [str(script), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("understudy serve did not start")
                time.sleep(0.2)
            shoot(url)
        finally:
            server.terminate()
            server.wait(15)


def shoot(url: str) -> None:
    sim = httpx.Client(base_url=url)
    sim.post(
        "/_sim/models",
        json={"model": "*", "first_token_s": 0.3, "tokens_per_s": 60, "reply_tokens": 60},
    )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox"]
        )
        page = browser.new_page(viewport={"width": 1100, "height": 720}, color_scheme="light")
        sim.post("/_sim/faults", json={"model": SONNET, "kind": "status", "status": 429})
        page.goto(url)
        box = page.get_by_role("textbox", name="Message", exact=True)
        box.fill(PROMPT)
        box.press("Enter")
        reply = page.get_by_test_id("assistant-message").last
        expect(reply).to_have_attribute("data-state", "done", timeout=20_000)
        page.screenshot(path=str(DOCS / "screenshot-degraded.png"))
        sim.delete("/_sim/faults")
        sim.post("/_sim/faults", json={"model": SONNET, "kind": "hang"})
        box.fill("And what happens when the lead actor is stuck in traffic?")
        box.press("Enter")
        status = page.get_by_test_id("assistant-message").last.get_by_test_id("reply-status")
        expect(status).to_contain_text("Waiting for Sonnet… 6 s", timeout=20_000)
        page.screenshot(path=str(DOCS / "screenshot-waiting.png"))
        sim.delete("/_sim/faults")
        browser.close()


if __name__ == "__main__":
    main()
