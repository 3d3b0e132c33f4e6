"""Drills on the admin pages in Chromium, on a server of their own (other tests run drills on the
shared one, and a recent pass there would hide the warning): the dashboard warns while no drill
passed in 90 days, the drills page lists them, and a real drill (through the drill API, its turn
sent with the drill's header) ends the warning, with its report rendered safely and its JSON."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from conftest import LiveApp, start_live_app
from playwright.sync_api import Page, expect

from web.db.admin_drills import DrillState, DrillView, Standing
from web.drills import HEADER
from web.routes.admin_drills import (
    blast_radius,
    drill_turns_words,
    overdue_warning,
    state_words,
)

from support.chat import CSRF, ChatClient

REPORT = """# Drill report: primary-down

**Hypothesis held**: Haiku answered every message.

<script>document.title = "pwned"</script>
"""


@pytest.fixture
def drills_app() -> Iterator[LiveApp]:
    base = Path(tempfile.mkdtemp(prefix="understudy-drills-ui-"))
    app = start_live_app(base)
    try:
        app.reset()
        yield app
    finally:
        app.stop()
        shutil.rmtree(base, ignore_errors=True)


def stored(moment: datetime) -> str:
    """How the app's SQLite columns hold a UTC time (web.db.models.UTCDateTime)."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")


def insert_drill(app: LiveApp, view: DrillView) -> None:
    with closing(sqlite3.connect(app.data_dir / "understudy.db")) as db, db:
        db.execute(
            "INSERT INTO drills (id, scenario, faults, instance_wide, started_at, expires_at, "
            "ended_at, verdict, report, markdown) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                view.id,
                view.scenario,
                json.dumps([{"tier": "sonnet", "kind": "overloaded"}]),
                view.instance_wide,
                stored(view.started_at),
                stored(view.expires_at),
                stored(view.ended_at) if view.ended_at else None,
                view.verdict,
                json.dumps({"verdict": view.verdict}),
                f"# {view.scenario}",
            ),
        )


def past_drill(drill_id: str, ago: timedelta, verdict: str, *, wide: bool = False) -> DrillView:
    started = datetime.now(UTC) - ago
    return DrillView(
        drill_id,
        "quarterly" if verdict == "pass" else "primary-down",
        (),
        wide,
        started,
        started + timedelta(hours=1),
        started + timedelta(minutes=12),
        verdict,
        True,
    )


class DrillRunner(ChatClient):
    """What `understudy drill` does, in short: log in, start a drill, chat with its header, end
    it with a report."""

    def __init__(self, url: str, password: str) -> None:
        super().__init__(url)
        token = CSRF.search(self.http.get("/admin/login").text)
        assert token
        login = self.http.post(
            "/admin/login", data={"csrf_token": token.group(1), "password": password}
        )
        assert login.status_code == 303, login.text
        fresh = CSRF.search(self.http.get("/").text)  # the login rotated the session
        assert fresh
        self.csrf = fresh.group(1)
        self.drill = ""

    def start(self) -> str:
        reply = self.http.post(
            "/admin/api/drills",
            json={"scenario": "primary-down", "faults": [{"tier": "sonnet", "kind": "overloaded"}]},
            headers={"X-CSRF-Token": self.csrf},
        )
        assert reply.status_code == 201, reply.text
        self.drill = str(reply.json()["id"])
        return self.drill

    def post(
        self, path: str, data: dict[str, str] | None = None, htmx: bool = True
    ) -> httpx.Response:
        return self.http.post(
            path,
            data=data or {},
            headers={"X-CSRF-Token": self.csrf, "HX-Request": "true", HEADER: self.drill},
        )

    def end(self, report: dict[str, object], markdown: str) -> None:
        reply = self.http.post(
            f"/admin/api/drills/{self.drill}/end",
            json={"verdict": "pass", "report": report, "markdown": markdown},
            headers={"X-CSRF-Token": self.csrf},
        )
        assert reply.status_code == 200, reply.text


def log_in(page: Page, app: LiveApp) -> None:
    page.goto(f"{app.url}/admin/login")
    page.get_by_label("Password").fill(app.admin_password)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{app.url}/admin")


def test_the_overdue_warning_the_drills_page_and_a_drills_report(
    page: Page, drills_app: LiveApp
) -> None:
    old_pass = past_drill("a" * 32, timedelta(days=120, hours=12), "pass")
    recent_fail = past_drill("b" * 32, timedelta(days=5), "fail", wide=True)
    for view in (old_pass, recent_fail):
        insert_drill(drills_app, view)
    log_in(page, drills_app)

    warning = overdue_warning(Standing(recent_fail, old_pass), datetime.now(UTC))
    expect(page.get_by_test_id("drill-overdue")).to_have_text(warning)
    last = page.get_by_test_id("last-drill")
    expect(last).to_have_attribute("data-drill-id", recent_fail.id)
    expect(last.get_by_test_id("last-drill-verdict")).to_have_text(state_words(DrillState.FAIL))
    expect(last).to_contain_text("primary-down")

    last.get_by_role("link", name="all drills").click()
    expect(page).to_have_url(f"{drills_app.url}/admin/drills")
    rows = page.get_by_test_id("drill-row")
    expect(rows).to_have_count(2)
    expect(rows.first).to_have_attribute("data-drill-id", recent_fail.id)  # newest first
    expect(rows.first.get_by_test_id("drill-blast-radius")).to_have_text(blast_radius(recent_fail))
    expect(rows.last.get_by_test_id("drill-blast-radius")).to_have_text(blast_radius(old_pass))
    expect(rows.last.get_by_test_id("drill-verdict")).to_have_text(state_words(DrillState.PASS))
    expect(rows.last.get_by_test_id("drill-duration")).to_have_text("12 min")

    # A real drill: its turn is the drill's, its end stores the report, and it passed today.
    runner = DrillRunner(drills_app.url, drills_app.admin_password)
    try:
        drill = runner.start()
        conversation = runner.new_conversation("A drill's message")
        runner.finish(conversation, runner.last_turn(conversation))
        assert runner.turns(conversation)[-1][1] == "haiku"
        runner.end({"scenario": "primary-down", "verdict": "pass"}, REPORT)
    finally:
        runner.close()

    page.goto(f"{drills_app.url}/admin")
    expect(page.get_by_test_id("drill-overdue")).to_have_count(0)
    expect(last).to_have_attribute("data-drill-id", drill)
    expect(last.get_by_test_id("last-drill-verdict")).to_have_text(state_words(DrillState.PASS))
    # The drill's turn is in no user figure: counted apart, listed apart.
    expect(page.get_by_test_id("degraded-turn")).to_have_count(0)
    expect(page.get_by_test_id("stat-turns").first).to_have_text("0")
    drill_turns = page.get_by_test_id("stat-drill-turns").first
    expect(drill_turns).to_have_text(drill_turns_words(1, "Last 24 hours"))
    drill_turns.click()
    expect(page.get_by_test_id("drill-turn")).to_have_count(1)
    expect(page.get_by_test_id("drill-turn")).to_have_attribute("data-tier", "haiku")

    page.goto(f"{drills_app.url}/admin")
    last.get_by_role("link", name=re.compile("primary-down")).click()
    expect(page).to_have_url(f"{drills_app.url}/admin/drills/{drill}")
    report = page.get_by_test_id("drill-report")
    expect(report.get_by_role("heading", name="Drill report: primary-down")).to_be_visible()
    expect(report.locator("strong")).to_have_text("Hypothesis held")
    expect(report).to_contain_text('<script>document.title = "pwned"</script>')  # as text
    assert page.title() != "pwned" and report.locator("script").count() == 0

    with page.expect_download() as download:
        page.get_by_test_id("drill-json").click()
    path = download.value.path()
    assert json.loads(Path(path).read_text()) == {"scenario": "primary-down", "verdict": "pass"}
    assert download.value.suggested_filename.endswith(".json")
