"""Two tabs of one browser on two servers of one deployment (PostgreSQL + Redis): the second
tab, served by the process that is not running the reply, shows the same live reply and its end."""

from __future__ import annotations

import pytest
from playwright.sync_api import BrowserContext, expect

from web.sim.replies import reply_text

from .helpers import SONNET, last_reply, raw_text, send
from support.cluster import Cluster

pytestmark = pytest.mark.postgres

TOKENS = 200
STREAM_MS = 60_000
"""An upper bound for a reply of 200 tokens at 20 tokens/s (about 10 s) on a loaded machine."""
GROWN = """(before) => {
  const reply = [...document.querySelectorAll('[data-testid="assistant-message"]')].pop();
  const shown = reply.querySelector('[data-testid="reply-body"]').textContent.trim().length;
  return reply.dataset.state === "streaming" && shown > before ? shown : false;
}"""
"""The length of the reply's text once it is longer than ``before`` while still streaming."""


def test_a_second_tab_on_another_server_shows_the_same_live_reply(
    context: BrowserContext, two_servers: Cluster
) -> None:
    cluster = two_servers
    cluster.reset()
    one, two = cluster.servers
    cluster.sim.set_profile("*", first_token_s=0.2, tokens_per_s=20.0, reply_tokens=TOKENS)
    first = context.new_page()
    first.goto(one.url)
    send(first, "Two tabs, two servers")
    first.wait_for_url(f"{one.url}/c/**", timeout=STREAM_MS)
    conversation = first.url.rsplit("/c/", 1)[1]
    expect(last_reply(first)).to_have_attribute("data-state", "streaming", timeout=STREAM_MS)
    # The same conversation, from the other server (the cookie is the same browser's).
    second = context.new_page()
    second.goto(f"{two.url}/c/{conversation}")
    reply = last_reply(second)
    # It grows on the second tab while it streams (followed live, not shown at the end).
    shown = second.wait_for_function(GROWN, arg=0, timeout=STREAM_MS).json_value()
    second.wait_for_function(GROWN, arg=shown, timeout=STREAM_MS)
    expect(reply).to_have_attribute("data-state", "done", timeout=STREAM_MS)
    expected = reply_text(SONNET, "Two tabs, two servers", TOKENS)
    assert raw_text(reply) == expected
    expect(last_reply(first)).to_have_attribute("data-state", "done", timeout=STREAM_MS)
    assert raw_text(last_reply(first)) == expected
