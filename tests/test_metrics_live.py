"""/metrics on a live `understudy serve` of its own (so every count is exact): the turns of the
real user path, a drill's turn, a queued reply that lands, and nothing a user wrote."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from conftest import ADMIN_PASSWORD, LiveApp, start_live_app
from prometheus_client.parser import text_string_to_metric_families

from web.deferral import DEFERRAL_TIER
from web.drills import HEADER
from web.metrics import NO_ERROR

from support.chat import CSRF, ChatClient
from support.queue_app import BATCH_DELAY_S, SONNET, all_down, queue_chain

K = TypeVar("K")
Series = dict[tuple[str, frozenset[tuple[str, str]]], float]
PROMPTS = ("What is an understudy, really?", "And a fallback chain?", "A drill's question")


@pytest.fixture(scope="module")
def server() -> Iterator[LiveApp]:
    base = Path(tempfile.mkdtemp(prefix="understudy-metrics-"))
    app = start_live_app(base, chain_text=queue_chain())
    try:
        yield app
    finally:
        app.stop()
        shutil.rmtree(base, ignore_errors=True)


def scrape(app: LiveApp) -> tuple[str, Series]:
    reply = httpx.get(f"{app.url}/metrics", timeout=10.0)
    assert reply.status_code == 200, reply.text
    values = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(reply.text)
        for s in family.samples
    }
    return reply.text, values


def turns(values: Series) -> dict[tuple[str, str, str], float]:
    """(tier, status, drill) -> count, for the series that counted something."""
    return {
        (labels["tier"], labels["status"], labels["drill"]): v
        for (name, key), v in values.items()
        if name == "understudy_turns_total" and v
        for labels in [dict(key)]
    }


def attempts(values: Series) -> dict[tuple[str, str, str], float]:
    return {
        (labels["tier"], labels["outcome"], labels["error_kind"]): v
        for (name, key), v in values.items()
        if name == "understudy_attempts_total" and v
        for labels in [dict(key)]
    }


def added(before: dict[K, float], after: dict[K, float]) -> dict[K, float]:
    """What was counted between two scrapes (the series that changed)."""
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


def users_attempts_in_the_log(app: LiveApp) -> Counter[tuple[str, str, str]]:
    """The tries of users' turns (not a drill's), as the turn log stored them; the deferral's
    submissions and polls are its job's steps, not tries of a tier."""
    with contextlib.closing(sqlite3.connect(app.data_dir / "understudy.db")) as db:
        rows = db.execute(
            "SELECT a.tier, a.outcome, a.error_kind FROM attempts a JOIN turns t "
            "ON t.id = a.turn_id WHERE t.drill_id IS NULL AND a.tier != ?",
            (DEFERRAL_TIER,),
        ).fetchall()
    return Counter((tier, outcome, kind or NO_ERROR) for tier, outcome, kind in rows)


class Admin(ChatClient):
    """A logged-in admin session: starts and ends a drill, and chats as its drill."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        token = CSRF.search(self.http.get("/admin/login").text).group(1)  # type: ignore[union-attr]
        login = self.http.post(
            "/admin/login", data={"csrf_token": token, "password": ADMIN_PASSWORD}
        )
        assert login.status_code == 303, login.text
        self.csrf = CSRF.search(self.http.get("/").text).group(1)  # type: ignore[union-attr]
        reply = self.http.post(
            "/admin/api/drills",
            json={"scenario": "primary-down", "faults": [{"tier": "sonnet", "kind": "overloaded"}]},
            headers={"X-CSRF-Token": self.csrf},
        )
        assert reply.status_code == 201, reply.text
        self.drill = str(reply.json()["id"])

    def post(
        self, path: str, data: dict[str, str] | None = None, htmx: bool = True
    ) -> httpx.Response:
        headers = {"X-CSRF-Token": self.csrf, "HX-Request": "true", HEADER: self.drill}
        return self.http.post(path, data=data or {}, headers=headers)

    def end(self, verdict: str) -> None:
        reply = self.http.post(
            f"/admin/api/drills/{self.drill}/end",
            json={"verdict": verdict, "report": {}, "markdown": ""},
            headers={"X-CSRF-Token": self.csrf},
        )
        assert reply.status_code == 200, reply.text


def ask(chat: ChatClient, text: str) -> str:
    """A new conversation whose first reply has ended; its id."""
    conversation = chat.new_conversation(text)
    chat.finish(conversation, chat.last_turn(conversation))
    return conversation


def test_the_counts_after_a_few_turns_and_a_drill(server: LiveApp) -> None:
    server.reset()
    _, start = scrape(server)
    assert start[("understudy_live_turns", frozenset())] == 0
    assert start[("understudy_breaker_state", frozenset({("tier", "sonnet")}))] == 0

    user = ChatClient(server.url)
    admin = Admin(server.url)
    try:
        conversations = [ask(user, PROMPTS[0])]
        server.set_fault(SONNET, "status", status=529)
        conversations.append(ask(user, PROMPTS[1]))
        server.clear_faults()
        conversations.append(ask(admin, PROMPTS[2]))  # the drill fails Sonnet for its turn only
        before_end = time.time()
        admin.end("pass")
        after_end = time.time()
        chats = zip((user, user, admin), conversations, strict=True)
        assert [chat.turns(c)[-1][1] for chat, c in chats] == ["sonnet", "haiku", "haiku"]
    finally:
        user.close()
        admin.close()

    text, values = scrape(server)
    assert added(turns(start), turns(values)) == {
        ("sonnet", "ok", "false"): 1,
        ("haiku", "degraded", "false"): 1,
        ("haiku", "degraded", "true"): 1,
    }
    # Users' tries only: the drill's failed Sonnet try is not an outage.
    assert attempts(values) == dict(users_attempts_in_the_log(server))
    assert attempts(values)[("sonnet", "failed", "overloaded")] >= 1
    for key, more in (
        (("understudy_time_to_first_token_seconds_count", frozenset({("tier", "sonnet")})), 1),
        (("understudy_time_to_first_token_seconds_count", frozenset({("tier", "haiku")})), 1),
        (("understudy_turn_duration_seconds_count", frozenset()), 2),
    ):
        assert values[key] - start[key] == more, key
    passed = values[("understudy_drill_last_pass_timestamp_seconds", frozenset())]
    assert before_end - 1 <= passed <= after_end + 1  # the server's clock, this machine's
    for secret in (*PROMPTS, *conversations, admin.drill):
        assert secret not in text


def test_a_queued_reply_counts_when_it_lands(server: LiveApp) -> None:
    server.reset()
    _, start = scrape(server)
    all_down(server)
    server.set_profile(SONNET, batch_delay_s=BATCH_DELAY_S)
    chat = ChatClient(server.url)
    try:
        conversation = chat.new_conversation("Queued, then answered")
        turn = chat.last_turn(conversation)
        assert 'data-state="queued"' in chat.finish(conversation, turn)[-1].data
        landed = chat.finish(conversation, turn)
        assert [e.event for e in landed] == ["snapshot", "done"]  # queued, then it landed
    finally:
        chat.close()

    text, values = scrape(server)
    assert added(turns(start), turns(values)) == {(DEFERRAL_TIER, "degraded", "false"): 1}
    assert values[("understudy_queue_depth", frozenset())] == 0
    assert values[("understudy_queue_oldest_age_seconds", frozenset())] == 0
    assert conversation not in text and turn not in text
