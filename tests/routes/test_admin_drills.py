"""The admin pages show drills: the drills page, a drill's report (rendered safely) and its JSON,
the dashboard's last drill and overdue warning, and drill turns apart from the users' figures.
Rows are written directly (no drill runs) and the pages' "now" is fixed."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI

from web.db.admin_drills import DrillState, drills, standing
from web.db.session import Factory, read_scope
from web.render import render_markdown
from web.routes.admin import utc_now
from web.routes.admin_deferral import format_duration
from web.routes.admin_drills import (
    blast_radius,
    drill_jobs_words,
    drill_turns_words,
    overdue_warning,
    state_words,
)
from web.status import JobState

from .conftest import log_in, text_of
from support.database import BACKENDS
from support.drills import add_drill, flag
from support.factories import NOW, turn
from support.jobs import deferred_turn

pytestmark = BACKENDS
MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)
HOSTILE = """# Drill report: primary-down

**Verdict: pass**

| tier | turns |
|---|---|
| haiku | 5 |

<script>alert("report")</script>
<img src="http://203.0.113.9/x.png" onerror="alert(1)">
![leak](http://203.0.113.9/leak.png)
[click](javascript:alert(1))
"""


@pytest.fixture(autouse=True)
def fixed_now(app: FastAPI) -> Iterator[None]:
    app.dependency_overrides[utc_now] = lambda: NOW
    yield
    app.dependency_overrides.pop(utc_now, None)


def texts(page: str, testid: str) -> list[str]:
    """The text of each element with this data-testid (its markup stripped)."""
    pattern = rf'data-testid="{testid}"[^>]*>(.*?)</(?:strong|span|dd|td|p|a)>'
    return [html.unescape(text_of(m)) for m in re.findall(pattern, page, flags=re.S)]


async def test_the_drills_page_has_a_row_per_drill_newest_first(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    old = await add_drill(factory, started_at=NOW - 100 * DAY, lasted=34 * MINUTE)
    wide = await add_drill(
        factory, started_at=NOW - 3 * DAY, scenario="all-down", verdict="fail", instance_wide=True
    )
    running = await add_drill(factory, started_at=NOW - 10 * MINUTE, lasted=None)
    assert (await client.get("/admin/drills")).status_code == 303  # an admin's page
    await log_in(client)

    page = (await client.get("/admin/drills")).text
    assert re.findall(r'data-testid="drill-row" data-drill-id="(\w+)"', page) == [
        running,
        wide,
        old,
    ]
    assert re.findall(r'href="(/admin/drills/\w+)" data-testid="drill-link"', page) == [
        f"/admin/drills/{i}" for i in (running, wide, old)
    ]
    async with read_scope(factory) as session:
        views = (await drills(session)).drills
    assert texts(page, "drill-scenario") == ["primary-down", "all-down", "primary-down"]
    assert texts(page, "drill-blast-radius") == [blast_radius(v) for v in views]
    assert blast_radius(views[1]) != blast_radius(views[0])
    assert texts(page, "drill-verdict") == [
        state_words(DrillState.RUNNING),
        state_words(DrillState.FAIL),
        state_words(DrillState.PASS),
    ]
    assert texts(page, "drill-duration") == [
        f"{format_duration(10 * MINUTE)} so far",
        format_duration(timedelta(minutes=4, seconds=30)),
        format_duration(34 * MINUTE),
    ]


async def test_the_drills_page_without_drills(client: httpx.AsyncClient) -> None:
    await log_in(client)
    page = (await client.get("/admin/drills")).text
    assert 'data-testid="no-drills"' in page and 'data-testid="drill-row"' not in page


async def test_a_report_is_rendered_through_the_sanitiser_and_offers_its_json(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    report = {"scenario": "primary-down", "verdict": "pass", "reasons": ["<b>held</b>"]}
    drill = await add_drill(
        factory,
        started_at=NOW - DAY,
        markdown=HOSTILE,
        report=report,
        faults=[{"tier": "sonnet", "kind": "cut", "after_tokens": 20}],
    )
    await log_in(client)
    page = (await client.get(f"/admin/drills/{drill}")).text
    shown = page.split('data-testid="drill-report">', 1)[1].split("</div>", 1)[0]
    assert shown == render_markdown(HOSTILE)
    assert "<strong>Verdict: pass</strong>" in shown and "<table>" in shown
    # Raw HTML stays text, an image is a link, a javascript: link is none.
    assert "&lt;script&gt;" in shown and "<script" not in shown and "<img" not in shown
    assert not re.search(r"<[^>]*onerror", shown) and 'href="javascript' not in shown
    assert texts(page, "drill-faults") == ["sonnet: cut (after_tokens 20)"]
    assert texts(page, "drill-verdict") == [state_words(DrillState.PASS)]
    assert f'href="/admin/drills/{drill}.json" download' in page
    assert f'href="/admin?kind=drill&amp;drill={drill}"' in page

    download = await client.get(f"/admin/drills/{drill}.json")
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("application/json")
    assert download.headers["content-disposition"].startswith('attachment; filename="')
    assert download.headers["cache-control"] == "no-store"
    assert download.headers["x-content-type-options"] == "nosniff"
    assert json.loads(download.text) == report
    assert (await client.head(f"/admin/drills/{drill}.json")).status_code == 200


async def test_a_running_drill_has_no_report_yet(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    running = await add_drill(factory, started_at=NOW - MINUTE, lasted=None)
    await log_in(client)
    page = (await client.get(f"/admin/drills/{running}")).text
    assert 'data-testid="no-report"' in page and 'data-testid="drill-json"' not in page
    assert texts(page, "drill-verdict") == [state_words(DrillState.RUNNING)]
    assert (await client.get(f"/admin/drills/{running}.json")).status_code == 404
    assert (await client.get(f"/admin/drills/{'0' * 32}")).status_code == 404
    assert (await client.get(f"/admin/drills/{'0' * 32}.json")).status_code == 404


async def test_the_dashboard_shows_the_last_drill_and_warns_when_none_passed_in_90_days(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    await log_in(client)

    async def dashboard() -> tuple[str, str]:
        async with read_scope(factory) as session:
            warning = overdue_warning(await standing(session), NOW)
        return (await client.get("/admin")).text, warning

    page, warning = await dashboard()
    assert texts(page, "drill-overdue") == [warning]
    assert "ever run" in warning
    assert "none yet" in texts(page, "last-drill")[0]

    await add_drill(factory, started_at=NOW - 92 * DAY, lasted=12 * 60 * MINUTE)
    failed = await add_drill(
        factory, started_at=NOW - 2 * DAY, scenario="quarterly", verdict="fail"
    )
    page, warning = await dashboard()
    assert texts(page, "drill-overdue") == [warning]
    assert "91 days ago" in warning  # counted from its end
    assert re.search(rf'data-testid="last-drill" data-drill-id="{failed}" data-state="fail"', page)
    assert texts(page, "last-drill-verdict") == [state_words(DrillState.FAIL)]
    assert f'<a href="/admin/drills/{failed}">' in page
    assert "quarterly" in page.split('data-testid="last-drill"', 1)[1].split("</p>", 1)[0]

    await add_drill(factory, started_at=NOW - 89 * DAY)
    page, _ = await dashboard()
    assert 'data-testid="drill-overdue"' not in page
    assert f'data-testid="last-drill" data-drill-id="{failed}"' in page  # still the last one


async def test_drill_turns_are_counted_and_listed_apart(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    user = await turn(factory, "haiku", ago=3 * MINUTE)
    drill = await add_drill(factory, started_at=NOW - 30 * MINUTE)
    ours = [await turn(factory, kind, ago=20 * MINUTE) for kind in ("haiku", "ok", "failed")]
    job = await deferred_turn(factory, state=JobState.WAITING, queued_at=NOW - 5 * MINUTE)
    await flag(factory, drill, [*ours, job])
    await log_in(client)

    page = (await client.get("/admin")).text
    assert re.findall(r'data-testid="degraded-turn" data-turn-id="(\w+)"', page) == [user]
    assert re.findall(r'data-testid="stat-turns">(\d+)<', page) == ["1", "1"]
    assert re.findall(r'data-testid="stat-degraded-share">([^<]+)<', page) == ["100.0 %"] * 2
    assert texts(page, "stat-drill-turns") == [
        drill_turns_words(4, "Last 24 hours"),
        drill_turns_words(4, "Last 7 days"),
    ]
    assert texts(page, "queue-depth") == ["0"]
    assert texts(page, "queue-drill-jobs") == [drill_jobs_words(1)]
    assert '<option value="drill" >drill turns</option>' in page

    listed = (await client.get("/admin?kind=drill")).text
    rows = re.findall(r'data-testid="drill-turn" data-turn-id="(\w+)"', listed)
    assert sorted(rows) == sorted([*ours, job]) and user not in rows
    assert (
        len(re.findall(rf'<tr data-testid="drill-turn"[^>]+data-drill-id="{drill}"', listed)) == 4
    )
    assert listed.count(f'href="/admin/drills/{drill}" data-testid="turn-drill-link"') == 4

    one = (await client.get(f"/admin?kind=failed&drill={drill}")).text
    assert re.findall(r'data-turn-id="(\w+)"', one) == [ours[2]]
    assert f'<input type="hidden" name="drill" value="{drill}">' in one
    junk = (await client.get("/admin?kind=drill&drill=../x")).text  # no such id: no filter
    assert len(re.findall(r'data-testid="drill-turn"', junk)) == 4

    detail = (await client.get(f"/admin/turns/{ours[0]}")).text
    assert f'href="/admin/drills/{drill}"' in detail.split('data-testid="turn-drill"', 1)[1]
    assert 'data-testid="turn-drill"' not in (await client.get(f"/admin/turns/{user}")).text
