"""The outage panel sets and clears faults through the simulator's own API."""

from __future__ import annotations

from typing import TYPE_CHECKING

from support.chat import ChatClient, live_client  # noqa: F401  (`client`: a browser session, not the in-process one)

if TYPE_CHECKING:
    from tests.conftest import LiveApp

SONNET = "claude-sonnet-4-6"
GPT = "gpt-5.5"


def test_the_demo_notice_and_panel_are_on_the_page(client: ChatClient) -> None:
    page = client.http.get("/").text
    assert "demo: simulated models" in page
    assert 'data-testid="outage-panel"' in page
    for label in ("rate limited", "overloaded", "hang", "cut mid-reply", "healthy again"):
        assert label in page


def test_each_mode_sets_the_matching_fault(client: ChatClient, live_app: LiveApp) -> None:
    expected = {
        "rate_limited": ("status", 429),
        "overloaded": ("status", 529),
        "hang": ("hang", None),
        "cut": ("cut", None),
    }
    for mode, (kind, status) in expected.items():
        reply = client.post("/demo/outage", {"tier": "sonnet", "mode": mode})
        assert reply.status_code == 200
        assert 'aria-pressed="true">' in reply.text
        faults = [f for f in live_app.faults() if f["model"] == SONNET]
        assert len(faults) == 1, faults  # one mode per tier: the previous one was replaced
        assert faults[0]["kind"] == kind and faults[0].get("status") == status
        assert faults[0]["count"] is None
    client.post("/demo/outage", {"tier": "sonnet", "mode": "healthy"})
    assert live_app.faults() == []


def test_openai_overload_is_a_503(client: ChatClient, live_app: LiveApp) -> None:
    client.post("/demo/outage", {"tier": "openai", "mode": "overloaded"})
    (fault,) = live_app.faults()
    assert (fault["model"], fault["status"]) == (GPT, 503)


def test_reset_and_bad_input(client: ChatClient, live_app: LiveApp) -> None:
    client.post("/demo/outage", {"tier": "haiku", "mode": "hang"})
    assert client.post("/demo/outage", {"tier": "nope", "mode": "hang"}).status_code == 422
    assert client.post("/demo/outage", {"tier": "haiku", "mode": "explode"}).status_code == 422
    assert client.post("/demo/outage/reset").status_code == 200
    assert live_app.faults() == []
