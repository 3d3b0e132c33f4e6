"""A code block in a finished reply, in a real browser: highlighted, labelled, copied exactly."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from playwright.sync_api import Page, expect

from web.sim.replies import reply_text

from .helpers import SONNET, send, wait_done

if TYPE_CHECKING:
    from tests.conftest import LiveApp

PROMPT = "Show me some code"
KEYWORD_LIGHT = "rgb(193, 31, 42)"  # --hl-keyword in static/app.css
KEYWORD_DARK = "rgb(255, 123, 114)"


def _fenced_code(text: str) -> str:
    match = re.search(r"```python\n(.*?)\n```", text, re.DOTALL)
    assert match, "the simulator's reply to a prompt about code has a python block"
    return match.group(1)


def test_a_code_block_is_highlighted_labelled_and_copied_exactly(
    page: Page, live_app: LiveApp
) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.emulate_media(color_scheme="light")
    page.goto(live_app.url)
    send(page, PROMPT)
    reply = wait_done(page)
    code = _fenced_code(reply_text(SONNET, PROMPT, 40))

    block = reply.get_by_test_id("code-block")
    expect(block).to_have_count(1)
    expect(block.get_by_test_id("code-lang")).to_have_text("python")
    expect(block.locator("pre > code")).to_have_class("language-python")
    keyword = block.locator("pre .hl-k").first  # every snippet starts with def or from
    expect(keyword).to_have_css("color", KEYWORD_LIGHT)
    page.emulate_media(color_scheme="dark")
    expect(keyword).to_have_css("color", KEYWORD_DARK)

    copy = block.get_by_role("button", name="Copy code", exact=True)
    expect(copy).to_have_attribute("data-testid", "copy-code")
    copy.focus()
    expect(copy).to_have_css("outline-style", "solid")  # a visible focus ring
    page.keyboard.press("Enter")
    expect(block.get_by_role("button", name="Copied", exact=True)).to_be_focused()
    assert page.evaluate("navigator.clipboard.readText()") == code
    expect(copy).to_have_text("Copy code")  # and back, for the next copy
