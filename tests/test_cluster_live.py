"""Several processes, one app: a live reply followed, stopped and reloaded through a server
other than the one running it (web.live_redis, web.bus, web.commands), on one PostgreSQL
database and Redis (tests/support/cluster.py).

Every reply is the simulator's deterministic text, so "the final text" is checked exactly. Waits
are bounded from above only.
"""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Iterator

import asyncpg
import pytest
from conftest import HAIKU, SONNET

from web.sim.replies import reply_text

from support.chat import ChatClient, SSEEvent
from support.cluster import Cluster

pytestmark = pytest.mark.postgres

RAW = re.compile(r'<template id="raw-[0-9a-f]+">(.*?)</template>', re.S)
STATE = re.compile(r'data-state="([a-z]+)"')
TIER = re.compile(r'data-tier="([a-z]*)"')
STREAM = re.compile(r'sse-connect="/c/[0-9a-f]+/turns/([0-9a-f]+)/stream"')
TOKENS = 60
HereAndThere = tuple[ChatClient, ChatClient]


def _final(events: list[SSEEvent]) -> tuple[str, str, str]:
    """(state, tier, text) of the "done" event that ends a stream."""
    assert events and events[-1].event == "done", [e.event for e in events]
    data = events[-1].data
    raw, state, tier = RAW.search(data), STATE.search(data), TIER.search(data)
    assert raw and state and tier, data[:300]
    return state.group(1), tier.group(1), html.unescape(raw.group(1))


def _turn_row(cluster: Cluster, turn_id: str) -> tuple[str, str | None]:
    async def fetch() -> tuple[str, str | None]:
        dsn = cluster.database_url.replace("postgresql+asyncpg", "postgresql")
        conn = await asyncpg.connect(dsn)
        try:
            row = await conn.fetchrow(
                "SELECT t.status, m.content FROM turns t LEFT JOIN messages m"
                " ON m.turn_id = t.id AND m.role = 'assistant' WHERE t.id = $1",
                turn_id,
            )
        finally:
            await conn.close()
        assert row is not None
        return str(row[0]), row[1]

    return asyncio.run(fetch())


@pytest.fixture
def here_and_there(two_servers: Cluster) -> Iterator[HereAndThere]:
    """One browser session on the two servers: ``here`` on the first, ``there`` the same session
    on the second; the simulator reset first."""
    two_servers.reset()
    one, two = two_servers.servers
    here = ChatClient(one.url)
    there = here.elsewhere(two.url)
    try:
        yield here, there
    finally:
        here.close()
        there.close()


def _send(chat: ChatClient, conversation: str, text: str) -> str:
    sent = chat.send(conversation, text)
    assert sent.status_code == 200, sent.text
    match = STREAM.search(sent.text)
    assert match, sent.text[:300]
    return match.group(1)


def test_a_reply_started_on_one_server_streams_from_another(
    two_servers: Cluster, here_and_there: HereAndThere
) -> None:
    cluster = two_servers
    here, there = here_and_there
    cluster.sim.set_profile("*", first_token_s=0.3, tokens_per_s=30.0, reply_tokens=TOKENS)
    conversation = here.new_conversation("first")
    here.finish(conversation, here.last_turn(conversation))
    turn = _send(here, conversation, "followed elsewhere")
    events = there.finish(conversation, turn)
    state, tier, text = _final(events)
    assert (state, tier, text) == (
        "done",
        "sonnet",
        reply_text(SONNET, "followed elsewhere", TOKENS),
    )
    # Followed live (a snapshot, then updates), not a replay of the stored reply.
    assert events[0].event == "snapshot" and any(e.event == "update" for e in events)
    assert _turn_row(cluster, turn) == ("ok", text)


def test_a_reload_on_another_server_shows_the_reply_so_far_and_follows_it(
    two_servers: Cluster, here_and_there: HereAndThere
) -> None:
    cluster = two_servers
    here, there = here_and_there
    cluster.sim.set_profile("*", first_token_s=0.1, tokens_per_s=20.0, reply_tokens=TOKENS)
    conversation = here.new_conversation("reload me")
    turn = here.last_turn(conversation)
    # Wait until server one has streamed some text (its first events have body text).
    first = here.stream(conversation, turn, limit=3)
    assert first[0].event == "snapshot"
    page = there.page(conversation)
    assert page.status_code == 200
    assert f'data-turn="{turn}"' in page.text and 'data-state="streaming"' in page.text
    events = there.finish(conversation, turn)
    # The reconnect replays the text so far in its first snapshot, then follows.
    assert events[0].event == "snapshot"
    assert _final(events) == ("done", "sonnet", reply_text(SONNET, "reload me", TOKENS))


def test_stop_pressed_on_another_server_stops_the_reply_and_keeps_its_text(
    two_servers: Cluster, here_and_there: HereAndThere
) -> None:
    cluster = two_servers
    here, there = here_and_there
    cluster.sim.set_profile("*", first_token_s=0.1, tokens_per_s=5.0, reply_tokens=TOKENS)
    conversation = here.new_conversation("stop me elsewhere")
    turn = here.last_turn(conversation)
    here.stream(conversation, turn, limit=3)  # it is writing
    stopped = there.post(f"/c/{conversation}/turns/{turn}/stop")
    assert stopped.status_code == 200, stopped.text
    assert 'data-state="stopped"' in stopped.text
    status, text = _turn_row(cluster, turn)
    full = reply_text(SONNET, "stop me elsewhere", TOKENS)
    assert status == "stopped"
    assert text and full.startswith(text) and text != full
    # The conversation is free again, on either server.
    assert _final(there.finish(conversation, _send(there, conversation, "next")))[0] == "done"


def test_answer_now_pressed_on_another_server_moves_to_the_next_tier(
    two_servers: Cluster, here_and_there: HereAndThere
) -> None:
    cluster = two_servers
    here, there = here_and_there
    cluster.sim.set_profile("*", first_token_s=0.02, tokens_per_s=400.0, reply_tokens=TOKENS)
    cluster.sim.set_profile(SONNET, first_token_s=4.5, tokens_per_s=400.0, reply_tokens=TOKENS)
    conversation = here.new_conversation("skip me")
    turn = here.last_turn(conversation)
    skipped = there.post(f"/c/{conversation}/turns/{turn}/skip", {"attempt": "1"})
    assert skipped.status_code == 204
    state, tier, text = _final(there.finish(conversation, turn))
    assert (state, tier, text) == ("done", "haiku", reply_text(HAIKU, "skip me", TOKENS))


def test_a_second_message_on_another_server_is_refused_while_one_is_answered(
    two_servers: Cluster, here_and_there: HereAndThere
) -> None:
    """The conversation is held across processes: the second message is not answered first."""
    cluster = two_servers
    here, there = here_and_there
    cluster.sim.set_profile("*", first_token_s=0.1, tokens_per_s=10.0, reply_tokens=TOKENS)
    conversation = here.new_conversation("hold")
    turn = here.last_turn(conversation)
    refused = there.send(conversation, "too soon")
    assert refused.status_code == 409, refused.text
    assert _final(there.finish(conversation, turn))[0] == "done"
