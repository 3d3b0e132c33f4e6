"""The /admin pages (dashboard, CSV, one turn) in the real app, in process, on both databases."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import httpx

from web.db.session import Factory
from web.db.turnlog import record_outcome
from web.providers.base import ErrorKind

from .conftest import log_in, text_of
from support.database import BACKENDS, add_user_message, start_turn
from support.factories import turn
from support.outcomes import no_answer

pytestmark = BACKENDS


async def test_dashboard_lists_degraded_turns_with_why_and_never_primary_ones(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    primary = await turn(factory, "ok")
    haiku = await turn(factory, "haiku", ago=timedelta(minutes=3))
    openai = await turn(factory, "openai", ago=timedelta(minutes=2), why=ErrorKind.RATE_LIMITED)
    failed = await turn(factory, "failed", ago=timedelta(minutes=1))
    await log_in(client)

    page = (await client.get("/admin")).text
    rows = re.findall(r'<tr data-testid="degraded-turn" data-turn-id="(\w+)"', page)
    assert rows == [openai, haiku]
    assert primary not in page and failed not in page
    # The conversation itself (/c/...) belongs to the browser that made it: 404 for the admin.
    chat_links = re.findall(r'<a href="([^"]+)" data-testid="turn-chat-link"', page)
    assert chat_links == [
        f"/admin/turns/{openai}#conversation",
        f"/admin/turns/{haiku}#conversation",
    ]
    assert 'href="/c/' not in page
    transcript = await client.get(chat_links[0].partition("#")[0])
    assert transcript.status_code == 200 and 'id="conversation"' in transcript.text
    assert "sonnet: rate_limited 529; haiku: timeout" in text_of(page)
    assert "sonnet: overloaded 529" in text_of(page)
    assert 'data-testid="tier-mix-chart"' in page and "<rect" in page
    assert re.search(r'data-testid="stat-turns">4<', page)  # 24 h: all four turns
    assert re.search(r'data-testid="stat-degraded-share">50.0 %<', page)

    failed_page = (await client.get("/admin?kind=failed")).text
    assert re.findall(r'data-testid="failed-turn" data-turn-id="(\w+)"', failed_page) == [failed]
    assert 'data-testid="degraded-turn"' not in failed_page

    only_openai = (await client.get("/admin?tier=openai")).text
    assert re.findall(r'data-turn-id="(\w+)"', only_openai) == [openai]
    by_reason = (await client.get("/admin?reason=overloaded")).text
    assert re.findall(r'data-turn-id="(\w+)"', by_reason) == [haiku]
    old = (await client.get("/admin?until=2000-01-01T00:00")).text
    assert 'data-testid="no-turns"' in old


async def test_pagination_keeps_the_filters(client: httpx.AsyncClient, factory: Factory) -> None:
    for i in range(27):
        await turn(factory, "haiku", ago=timedelta(minutes=i))
    await log_in(client)
    first = (await client.get("/admin?tier=haiku")).text
    assert first.count('data-testid="degraded-turn"') == 25
    assert "page 1 of 2" in first
    assert 'href="/admin?kind=degraded&amp;tier=haiku&amp;page=2"' in first
    second = (await client.get("/admin?kind=degraded&tier=haiku&page=2")).text
    assert second.count('data-testid="degraded-turn"') == 2


async def test_csv_export(client: httpx.AsyncClient, factory: Factory) -> None:
    haiku = await turn(factory, "haiku")
    await turn(factory, "ok")
    await log_in(client)
    response = await client.get("/admin/degraded.csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [(r["turn_id"], r["tier"], r["why"], r["attempts"]) for r in rows] == [
        (haiku, "haiku", "sonnet: overloaded 529", "2")
    ]


async def test_csv_cells_cannot_start_a_spreadsheet_formula(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    conversation_id, message_id = await add_user_message(factory)
    turn_id, _ = await start_turn(
        factory, conversation_id=conversation_id, user_message_id=message_id
    )
    gone = no_answer('=HYPERLINK("http://x.example","click")', (), total=0.1)
    await record_outcome(factory, turn_id, gone)
    await log_in(client)
    response = await client.get("/admin/degraded.csv?kind=failed")
    [row] = list(csv.DictReader(io.StringIO(response.text)))
    assert row["error_message"].startswith("'=HYPERLINK")


async def test_turn_page_shows_attempts_in_order_and_the_conversation(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    turn_id = await turn(factory, "openai", prompt="Tell me <b>about</b> WAL")
    await log_in(client)
    page = (await client.get(f"/admin/turns/{turn_id}")).text
    assert re.findall(r'data-testid="attempt" data-outcome="(\w+)" data-tier="(\w+)"', page) == [
        ("failed", "sonnet"),
        ("failed", "haiku"),
        ("ok", "openai"),
    ]
    assert "Tell me &lt;b&gt;about&lt;/b&gt; WAL" in page  # escaped, read-only
    assert 'href="/c/' not in page  # the admin's session does not own the conversation
    assert '<a href="#conversation">' in page and '<h2 id="conversation">' in page
    missing = await client.get("/admin/turns/" + "0" * 32)
    assert missing.status_code == 404
