"""Untrusted text stays text; conversations stay with the browser session that made them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from playwright.sync_api import Browser, Dialog, Page, expect

from web.sim.replies import reply_text

from .helpers import SONNET, conversation_url, last_reply, raw_text, send, wait_done

if TYPE_CHECKING:
    from tests.conftest import LiveApp

PAYLOAD = (
    "<img src=x onerror=\"window.__pwned='img'\">"
    "<script>window.__pwned='script'</script>"
    "<svg onload=\"window.__pwned='svg'\"></svg>"
    "[link](javascript:window.__pwned='link') **bold**"
)


def test_xss_in_the_prompt_and_in_the_reply_renders_as_text(page: Page, live_app: LiveApp) -> None:
    dialogs: list[str] = []

    def refuse(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", refuse)
    live_app.set_profile(SONNET, tokens_per_s=40.0)  # watch the streamed (escaped) chunks too
    page.goto(live_app.url)
    send(page, PAYLOAD)
    reply = last_reply(page)
    expect(reply.get_by_test_id("reply-body")).to_contain_text("<img src=x")  # while streaming
    expect(reply).to_have_attribute("data-state", "streaming")
    assert page.locator("#transcript img, #transcript svg, #transcript script").count() == 0
    wait_done(page)

    user = page.get_by_test_id("user-message").last
    expect(user).to_contain_text(PAYLOAD)  # the prompt, shown exactly as typed
    assert PAYLOAD in raw_text(reply)  # the model echoed it back...
    expect(reply.get_by_test_id("reply-body")).to_contain_text("<script>window.__pwned")
    transcript = page.locator("#transcript")
    assert transcript.locator("img, svg, script, iframe").count() == 0  # ...as text
    assert transcript.locator("a[href^='javascript']").count() == 0
    assert page.evaluate("window.__pwned") is None
    page.reload()
    wait_done(page)
    assert page.locator("#transcript img, #transcript svg, #transcript script").count() == 0
    assert page.evaluate("window.__pwned") is None
    assert dialogs == []
    assert raw_text(last_reply(page)) == reply_text(SONNET, PAYLOAD, 40)


def test_another_browser_cannot_open_the_conversation(
    page: Page, browser: Browser, live_app: LiveApp
) -> None:
    page.goto(live_app.url)
    send(page, "Just between us")
    wait_done(page)
    url = conversation_url(page)
    turn = last_reply(page).get_attribute("data-turn")

    other = browser.new_context()
    try:
        intruder = other.new_page()
        response = intruder.goto(url)
        assert response is not None and response.status == 404
        expect(intruder.get_by_role("heading", name="Not found")).to_be_visible()
        expect(intruder.locator("body")).not_to_contain_text("Just between us")
        stream = intruder.request.get(f"{url}/turns/{turn}/stream")
        assert stream.status == 404
        intruder.goto(live_app.url)
        expect(intruder.get_by_test_id("conversation-list")).not_to_contain_text("Just between us")
    finally:
        other.close()
    page.reload()
    expect(page.get_by_test_id("user-message")).to_contain_text("Just between us")
