"""Drills on a live server (web.drills): the faults hit the drill's own turns only (or every
turn, instance-wide), those turns are flagged, a drill never opens a breaker for real users, and
ending it (or its expiry) restores."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import ADMIN_PASSWORD, TEST_CHAIN, LiveApp, start_live_app

from web.drills import HEADER

from support.chat import CSRF, ChatClient


class Admin(ChatClient):
    """A browser session logged in to /admin: it drives the drill API and chats as a drill."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        login = self.http.get("/admin/login")
        token = CSRF.search(login.text).group(1)  # type: ignore[union-attr]
        reply = self.http.post(
            "/admin/login", data={"csrf_token": token, "password": ADMIN_PASSWORD}
        )
        assert reply.status_code == 303, reply.text
        self.csrf = CSRF.search(self.http.get("/").text).group(1)  # type: ignore[union-attr]
        self.drill: str | None = None

    def api(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return self.http.post(
            f"/admin/api/drills{path}", json=body, headers={"X-CSRF-Token": self.csrf}
        )

    def start(self, faults: list[dict[str, Any]], **extra: Any) -> str:
        reply = self.api("", {"scenario": "test", "faults": faults, **extra})
        assert reply.status_code == 201, reply.text
        self.drill = str(reply.json()["id"])
        return self.drill

    def end(self, verdict: str = "pass") -> bool:
        assert self.drill is not None
        reply = self.api(f"/{self.drill}/end", {"verdict": verdict, "report": {"ok": True}})
        assert reply.status_code == 200, reply.text
        return bool(reply.json()["ended"])

    def post(
        self, path: str, data: dict[str, str] | None = None, htmx: bool = True
    ) -> httpx.Response:
        headers = {"X-CSRF-Token": self.csrf, "HX-Request": "true"}
        if self.drill is not None:
            headers[HEADER] = self.drill
        return self.http.post(path, data=data or {}, headers=headers)

    def ask(self, text: str) -> tuple[str, str, str]:
        """A new conversation; (turn id, tier, state) once its reply has ended."""
        conversation = self.new_conversation(text)
        turn = self.last_turn(conversation)
        self.finish(conversation, turn)
        return self.turns(conversation)[-1]


@pytest.fixture
def admin(live_app: LiveApp) -> Iterator[Admin]:
    client = Admin(live_app.url)
    yield client
    if client.drill is not None:
        client.end("aborted")
    client.close()


def _drill_of(app: LiveApp, turn_id: str) -> str | None:
    with contextlib.closing(sqlite3.connect(app.data_dir / "understudy.db")) as db:
        row = db.execute("SELECT drill_id FROM turns WHERE id = ?", (turn_id,)).fetchone()
    assert row is not None
    return row[0]


def test_the_faults_hit_the_drills_own_turns_only(live_app: LiveApp, admin: Admin) -> None:
    drill = admin.start([{"tier": "sonnet", "kind": "overloaded"}])
    turn, tier, state = admin.ask("A drill turn")
    assert (tier, state) == ("haiku", "done")
    assert _drill_of(live_app, turn) == drill

    user = ChatClient(live_app.url)
    try:
        conversation = user.new_conversation("An ordinary user meanwhile")
        user.finish(conversation, user.last_turn(conversation))
        user_turn, user_tier, _ = user.turns(conversation)[-1]
        assert user_tier == "sonnet" and _drill_of(live_app, user_turn) is None
    finally:
        user.close()
    assert not live_app.faults()  # nothing was set at the simulator

    assert admin.end() is True
    assert admin.end() is False  # ending twice changes nothing
    turn, tier, _ = admin.ask("After the drill")
    assert tier == "sonnet"  # the fault is gone; the turn is still the drill's (its recovery)
    assert _drill_of(live_app, turn) == drill


def test_instance_wide_faults_hit_every_turn(live_app: LiveApp, admin: Admin) -> None:
    admin.start([{"tier": "sonnet", "kind": "server_error"}], instance_wide=True)
    user = ChatClient(live_app.url)
    try:
        conversation = user.new_conversation("Staging user during an instance-wide drill")
        user.finish(conversation, user.last_turn(conversation))
        user_turn, tier, _ = user.turns(conversation)[-1]
        assert tier == "haiku" and _drill_of(live_app, user_turn) is None
    finally:
        user.close()


def test_a_revoked_key_is_refused_by_the_provider_itself(live_app: LiveApp, admin: Admin) -> None:
    admin.start([{"tier": "sonnet", "kind": "revoked_key"}])
    _turn, tier, _ = admin.ask("Sonnet's key is revoked")
    # The simulator answered 401; the chain skips every tier with that key (Haiku too).
    assert tier == "openai"
    sonnet = [r for r in live_app.requests("claude-sonnet-4-6") if r["status"] == 401]
    assert sonnet, live_app.requests()


@pytest.mark.parametrize(
    ("fault", "tier"),
    [({"kind": "cut", "after_tokens": 3}, "haiku"), ({"kind": "slow", "delay_s": 0.5}, "sonnet")],
)
def test_cut_and_slow(live_app: LiveApp, admin: Admin, fault: dict[str, Any], tier: str) -> None:
    admin.start([{"tier": "sonnet", **fault}])
    assert admin.ask(f"{fault['kind']} drill")[1:] == (tier, "done")


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"scenario": "x", "faults": [{"tier": "nope", "kind": "hang"}]}, 400, "unknown tier"),
        (
            {"scenario": "x", "faults": [{"tier": "sonnet", "kind": "melt"}]},
            400,
            "unknown fault kind",
        ),
        ({"scenario": "x", "faults": []}, 400, "non-empty list"),
        (
            {"scenario": "x", "faults": [{"tier": "sonnet", "kind": "slow", "delay_s": -1}]},
            400,
            "delay_s",
        ),
        (
            {"scenario": "x", "ttl_s": 10**9, "faults": [{"tier": "sonnet", "kind": "hang"}]},
            400,
            "ttl_s",
        ),
    ],
)
def test_bad_requests_are_refused_with_a_reason(
    admin: Admin, body: dict[str, Any], status: int, words: str
) -> None:
    reply = admin.api("", body)
    assert reply.status_code == status and words in reply.json()["error"]


def test_one_drill_at_a_time_and_admins_only(live_app: LiveApp, admin: Admin) -> None:
    admin.start([{"tier": "sonnet", "kind": "hang"}])
    second = admin.api("", {"scenario": "y", "faults": [{"tier": "haiku", "kind": "hang"}]})
    assert second.status_code == 409
    stranger = ChatClient(live_app.url)
    try:
        reply = stranger.http.post(
            "/admin/api/drills",
            json={"scenario": "z", "faults": [{"tier": "sonnet", "kind": "hang"}]},
            headers={"X-CSRF-Token": stranger.csrf},
        )
        assert reply.status_code == 401
    finally:
        stranger.close()


QUICK = "breaker = { min_calls = 1, failure_rate = 0.5, open_s = 30, max_open_s = 30 }"


@pytest.fixture
def breaker_app() -> Iterator[LiveApp]:
    base = Path(tempfile.mkdtemp(prefix="understudy-drill-breakers-"))
    chain = TEST_CHAIN.replace(
        "breaker = { min_calls = 1000000, open_s = 0.001, max_open_s = 0.001 }", QUICK
    )
    app = start_live_app(base, chain_text=chain)
    try:
        app.reset()
        yield app
    finally:
        app.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_a_drill_of_its_own_turns_never_opens_a_breaker(breaker_app: LiveApp) -> None:
    admin = Admin(breaker_app.url)
    try:
        admin.start([{"tier": "sonnet", "kind": "overloaded"}])
        for i in range(3):
            assert admin.ask(f"Drill turn {i}")[1] == "haiku"
        admin.end()
        user = ChatClient(breaker_app.url)
        try:
            conversation = user.new_conversation("Is Sonnet's breaker still closed?")
            user.finish(conversation, user.last_turn(conversation))
            assert user.turns(conversation)[-1][1] == "sonnet"
        finally:
            user.close()
    finally:
        admin.close()


def test_after_its_end_a_drills_header_flags_turns_without_faults(
    live_app: LiveApp, admin: Admin
) -> None:
    """The recovery check's messages: answered normally, kept out of the users' figures."""
    drill = admin.start([{"tier": "sonnet", "kind": "overloaded"}])
    admin.end()
    turn, tier, _ = admin.ask("Recovery check")
    assert tier == "sonnet" and _drill_of(live_app, turn) == drill
    admin.drill = "0" * 32  # a header naming no drill at all: an ordinary turn
    turn, tier, _ = admin.ask("Not a drill")
    assert tier == "sonnet" and _drill_of(live_app, turn) is None
    admin.drill = None


def test_the_final_report_replaces_a_pending_one_once(admin: Admin) -> None:
    drill = admin.start([{"tier": "sonnet", "kind": "overloaded"}])
    pending = {"recovery": {"pending": True}, "verdict": "pass"}
    assert admin.api(f"/{drill}/end", {"verdict": "pass", "report": pending}).json()["ended"]
    admin.drill = None
    final = {"recovery": {"passed": False}, "verdict": "fail"}
    body = {"verdict": "fail", "report": final, "markdown": "# failed recovery"}
    assert admin.api(f"/{drill}/report", body).json() == {"updated": True}
    assert admin.api(f"/{drill}/report", body).json() == {"updated": False}  # once
    stored = admin.http.get(f"/admin/api/drills/{drill}").json()
    assert stored["verdict"] == "fail"


def test_a_running_drills_report_cannot_be_completed(admin: Admin) -> None:
    drill = admin.start([{"tier": "sonnet", "kind": "overloaded"}])
    body = {"verdict": "pass", "report": {"recovery": {"passed": True}}}
    assert admin.api(f"/{drill}/report", body).json() == {"updated": False}
