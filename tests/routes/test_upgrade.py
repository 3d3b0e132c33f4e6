"""POST /c/{id}/turns/{turn}/upgrade ("Ask Sonnet again") over real HTTP against the live app and
its simulator: what is offered where, the primary-only run, the page after it answered or failed,
and the refusals (404 for another session, 403 without CSRF, 409 when busy or not offered)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from markupsafe import escape

from web.providers.base import ErrorKind
from web.sim.replies import reply_text
from web.status import TurnStatus
from web.wording import (
    UPGRADE_BUSY,
    UPGRADE_NOT_OFFERED,
    upgrade_kept_note,
    upgrade_label,
    upgraded_note,
    upgrading_note,
)

from support.browser import LogDB
from support.chat import ChatClient, live_client  # noqa: F401  (`client`: a browser session, not the in-process one)
from support.fragments import find, text_of

if TYPE_CHECKING:
    from tests.conftest import LiveApp

SONNET = "claude-sonnet-4-6"
HAIKU = "claude-haiku-4-5-20251001"
ASK_AGAIN = upgrade_label("Sonnet")


def escaped(text: str) -> str:
    """As the templates write it."""
    return str(escape(text))


FAST_MODE = "fast mode (smaller model)"


def _fast_mode_reply(client: ChatClient, live_app: LiveApp, text: str) -> tuple[str, str]:
    """A conversation whose reply came from Haiku (Sonnet rate limited), and Sonnet healthy
    again: (conversation, the degraded turn)."""
    live_app.set_fault(SONNET, "status", status=429)
    conversation = client.new_conversation(text)
    turn = client.last_turn(conversation)
    client.finish(conversation, turn)
    live_app.clear_faults()
    return conversation, turn


def _upgrade(client: ChatClient, conversation: str, turn: str) -> str:
    """Press "Ask Sonnet again"; returns the new block's HTML."""
    reply = client.post(f"/c/{conversation}/turns/{turn}/upgrade")
    assert reply.status_code == 200, reply.text
    return reply.text


def test_a_fast_mode_reply_is_upgraded_and_the_earlier_one_stays_one_click_away(
    client: ChatClient, live_app: LiveApp
) -> None:
    conversation, degraded = _fast_mode_reply(client, live_app, "What is a fallback?")
    page = client.page(conversation).text
    assert 'data-testid="upgrade"' in page and f">{ASK_AGAIN}</button>" in page
    live_app.clear_requests()
    block = _upgrade(client, conversation, degraded)
    upgrade = client.last_turn(conversation)
    assert upgrade != degraded
    running = find(block, f"turn-{upgrade}")
    assert running is not None and f'id="reply-{upgrade}"' in running.inner
    assert 'data-state="streaming"' in running.inner
    assert escaped(upgrading_note("Sonnet", "Haiku")) in block
    earlier = find(block, f"reply-{degraded}")
    assert earlier is None  # the degraded reply is not a reply on the page any more...
    assert 'data-testid="earlier-reply"' in block  # ...but folded beside the upgrade

    events = client.finish(conversation, upgrade)
    done = events[-1].data
    assert f'id="turn-{upgrade}" hx-swap-oob="outerHTML"' in done  # the whole block, redrawn
    assert escaped(upgraded_note("Sonnet", "Haiku", FAST_MODE)) in done
    shown = client.page(conversation).text
    assert client.turns(conversation) == [(upgrade, "sonnet", "done")]
    [opening] = re.findall(r'<details[^>]*data-testid="earlier-reply"[^>]*>', shown)
    assert " open" not in opening  # closed by default
    details = shown.split(opening, 1)[1].split("</details>", 1)[0]
    assert FAST_MODE in details and "Generated via Haiku" in details
    assert text_of(details.split('data-testid="earlier-body">', 1)[1]) == text_of(
        escaped(reply_text(HAIKU, "What is a fallback?", 40))
    )
    assert escaped(upgraded_note("Sonnet", "Haiku", FAST_MODE)) in shown
    assert 'data-testid="upgrade"' not in shown  # the reply is the primary's now
    # The primary alone was asked, once; both turns are in the log.
    assert [r["model"] for r in live_app.requests()] == [SONNET]
    log = LogDB(live_app.database_url)
    assert log.turn(upgrade)["upgrade_of"] == degraded
    assert (log.turn(degraded)["status"], log.turn(upgrade)["status"]) == ("degraded", "ok")


def test_an_upgrade_the_primary_fails_keeps_the_fast_mode_reply(
    client: ChatClient, live_app: LiveApp
) -> None:
    conversation, degraded = _fast_mode_reply(client, live_app, "Keep me")
    live_app.set_fault(SONNET, "status", status=529)  # down again, and Haiku is fine
    live_app.clear_requests()
    _upgrade(client, conversation, degraded)
    upgrade = LogDB(live_app.database_url).turn_of(conversation)
    events = client.finish(conversation, upgrade)
    kept = escaped(upgrade_kept_note("Sonnet", "Haiku", TurnStatus.FAILED, ErrorKind.OVERLOADED))
    assert kept in events[-1].data
    assert f'id="turn-{upgrade}"' in events[-1].data and f'id="reply-{degraded}"' in events[-1].data
    assert {r["model"] for r in live_app.requests()} == {SONNET}  # no fallback to Haiku
    page = client.page(conversation).text
    assert client.turns(conversation) == [(degraded, "haiku", "done")]
    assert kept in page
    assert f">{ASK_AGAIN}</button>" in page  # it may be asked again
    # The next message is answered with the kept reply in its history (web.db tests say what
    # is sent; here: the conversation goes on normally).
    live_app.clear_faults()
    client.send(conversation, "And then?")
    client.finish(conversation, client.last_turn(conversation))
    assert [t[1:] for t in client.turns(conversation)] == [("haiku", "done"), ("sonnet", "done")]
    assert 'data-testid="upgrade"' not in client.page(conversation).text  # not the latest now


def test_stop_during_an_upgrade_keeps_the_earlier_reply(
    client: ChatClient, live_app: LiveApp
) -> None:
    conversation, degraded = _fast_mode_reply(client, live_app, "Stop it")
    live_app.set_profile(SONNET, tokens_per_s=10.0)  # 4 s: time to press Stop
    _upgrade(client, conversation, degraded)
    upgrade = LogDB(live_app.database_url).turn_of(conversation)
    stopped = client.post(f"/c/{conversation}/turns/{upgrade}/stop")
    assert stopped.status_code == 200
    kept = escaped(upgrade_kept_note("Sonnet", "Haiku", TurnStatus.STOPPED, None))
    assert kept in stopped.text and f'id="reply-{degraded}"' in stopped.text
    assert kept in client.finish(conversation, upgrade)[-1].data  # the stream ends the same way
    assert client.turns(conversation) == [(degraded, "haiku", "done")]


def test_upgrade_refusals(client: ChatClient, stranger: ChatClient, live_app: LiveApp) -> None:
    conversation, degraded = _fast_mode_reply(client, live_app, "Mine")
    path = f"/c/{conversation}/turns/{degraded}/upgrade"
    assert stranger.post(path).status_code == 404
    assert client.post(f"/c/{conversation}/turns/{'0' * 32}/upgrade").status_code == 404
    no_token = client.http.post(path, headers={"HX-Request": "true"})
    assert no_token.status_code == 403
    # Busy: a reply is being written in the conversation.
    live_app.set_profile(SONNET, tokens_per_s=10.0)
    client.send(conversation, "slow second")
    busy = client.post(path)
    assert busy.status_code == 409 and escaped(UPGRADE_BUSY) in busy.text
    client.finish(conversation, client.last_turn(conversation))
    # Not the latest reply any more, and a primary reply: nothing to upgrade.
    for turn in (degraded, client.last_turn(conversation)):
        refused = client.post(f"/c/{conversation}/turns/{turn}/upgrade")
        assert refused.status_code == 409, turn
        assert escaped(UPGRADE_NOT_OFFERED) in refused.text
    assert len(LogDB(live_app.database_url).query("SELECT id FROM turns")) >= 2
    assert (
        LogDB(live_app.database_url).query(
            "SELECT id FROM turns WHERE upgrade_of IS NOT NULL AND conversation_id = ?",
            conversation,
        )
        == []
    )


def test_regenerate_is_not_an_upgrade(client: ChatClient, live_app: LiveApp) -> None:
    conversation, degraded = _fast_mode_reply(client, live_app, "Again")
    client.post(f"/c/{conversation}/turns/{degraded}/regenerate")
    regenerated = client.last_turn(conversation)
    events = client.finish(conversation, regenerated)
    assert 'data-testid="upgraded-note"' not in events[-1].data
    assert LogDB(live_app.database_url).turn(regenerated)["upgrade_of"] is None
    assert client.turns(conversation) == [(regenerated, "sonnet", "done")]
