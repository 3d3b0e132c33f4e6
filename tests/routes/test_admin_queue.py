"""The admin pages show the deferral: the queue on the dashboard, the queued and delayed lists,
a turn's job and its folded polls, the CSV's queue columns. Rows are written directly (no worker)
and the pages' "now" is fixed, so every age is exact."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI

from web.db.admin_queue import JobView
from web.db.session import Factory
from web.routes.admin import utc_now
from web.routes.admin_deferral import OUTCOME_NOTES, format_duration, job_outcome
from web.routes.admin_render import format_time
from web.status import AttemptOutcome, JobState

from .conftest import log_in, text_of
from support.database import BACKENDS
from support.factories import NOW, turn
from support.jobs import BATCH, UNAVAILABLE, Poll, deferred_turn

pytestmark = BACKENDS
MINUTE = timedelta(minutes=1)


@pytest.fixture(autouse=True)
def fixed_now(app: FastAPI) -> Iterator[None]:
    app.dependency_overrides[utc_now] = lambda: NOW
    yield
    app.dependency_overrides.pop(utc_now, None)


def texts(html: str, testid: str) -> list[str]:
    """The text of each element with this data-testid (its markup stripped)."""
    pattern = rf'data-testid="{testid}"[^>]*>(.*?)</(?:strong|span|dd|td|code|p)>'
    return [text_of(m) for m in re.findall(pattern, html, flags=re.S)]


def row_ids(html: str, kind: str) -> list[str]:
    return re.findall(rf'<tr data-testid="{kind}-turn" data-turn-id="(\w+)"', html)


async def test_the_dashboard_says_when_the_queue_is_empty(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    await turn(factory, "haiku")
    await log_in(client)
    page = (await client.get("/admin")).text
    assert texts(page, "queue-depth") == ["0"]
    assert texts(page, "queue-oldest") == ["empty"]
    assert 'data-testid="queue-backends"' not in page
    assert 'data-testid="turn-queue"' not in page  # no row has a job: no queue column


async def test_the_dashboard_shows_the_queue_depth_oldest_age_and_backends(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    await deferred_turn(factory, state=JobState.WAITING, queued_at=NOW - 3 * MINUTE)
    await deferred_turn(
        factory, state=JobState.SUBMITTED, queued_at=NOW - timedelta(hours=2, minutes=5)
    )
    await deferred_turn(factory, state=JobState.WAITING, queued_at=NOW - MINUTE, backend="retry")
    await deferred_turn(
        factory, state=JobState.DONE, queued_at=NOW - timedelta(days=2), finished_at=NOW
    )
    await log_in(client)
    page = (await client.get("/admin")).text
    assert texts(page, "queue-depth") == ["3"]
    assert texts(page, "queue-oldest") == [f"{format_duration(timedelta(hours=2, minutes=5))} ago"]
    assert texts(page, "queue-oldest") == ["2 h 5 min ago"]
    assert texts(page, "queue-backends") == ["anthropic_batch: 2, retry: 1"]
    assert '<a href="/admin?kind=queued">' in page and 'href="/admin?kind=delayed"' in page
    assert re.search(r'data-testid="stat-queued">3<', page)  # three turns still queued today


async def test_the_queued_filter_lists_queued_turns_with_when_and_how_long(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    await turn(factory, "haiku", ago=MINUTE)
    older = await deferred_turn(factory, state=JobState.SUBMITTED, queued_at=NOW - 20 * MINUTE)
    newer = await deferred_turn(
        factory, state=JobState.WAITING, queued_at=NOW - timedelta(seconds=5)
    )
    await deferred_turn(
        factory, state=JobState.DONE, queued_at=NOW - 30 * MINUTE, finished_at=NOW - MINUTE
    )
    await log_in(client)
    page = (await client.get("/admin?kind=queued")).text
    assert row_ids(page, "queued") == [newer, older]
    assert 'data-testid="degraded-turn"' not in page and 'data-testid="delayed-turn"' not in page
    assert '<option value="queued" selected>queued turns</option>' in page
    assert texts(page, "turn-queued-at") == [
        format_time(NOW - timedelta(seconds=5)),
        format_time(NOW - 20 * MINUTE),
    ]
    assert texts(page, "turn-age") == ["5 s", "20 min"]
    assert "waiting 20 min so far" in text_of(page)
    assert "not yet" in text_of(page)  # answered by no tier, yet
    assert "sonnet: overloaded 529; haiku: overloaded 529; openai: overloaded 503" in text_of(page)
    # The filter carries into the links, like the other kinds.
    assert 'href="/admin/degraded.csv?kind=queued"' in page


async def test_the_delayed_filter_lists_replies_the_deferral_wrote_with_their_wait(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    await deferred_turn(factory, state=JobState.WAITING, queued_at=NOW - MINUTE)
    await deferred_turn(
        factory, state=JobState.CANCELLED, queued_at=NOW - 9 * MINUTE, finished_at=NOW
    )
    delayed = await deferred_turn(
        factory,
        state=JobState.DONE,
        queued_at=NOW - timedelta(hours=3),
        finished_at=NOW - timedelta(hours=3) + timedelta(minutes=4, seconds=12),
    )
    await log_in(client)
    page = (await client.get("/admin?kind=delayed")).text
    assert row_ids(page, "delayed") == [delayed]
    assert 'data-job-state="done"' in page
    assert texts(page, "turn-queued-at") == [format_time(NOW - timedelta(hours=3))]
    assert texts(page, "turn-wait") == [format_duration(timedelta(minutes=4, seconds=12))]
    assert texts(page, "turn-wait") == ["4 min 12 s"]
    assert "waited 4 min 12 s" in text_of(page)

    # In the degraded list a delayed reply is marked as what it is.
    degraded = (await client.get("/admin?kind=degraded")).text
    assert row_ids(degraded, "delayed") == [delayed]
    nothing = (await client.get("/admin?kind=delayed&until=2000-01-01T00:00")).text
    assert "No delayed turns match these filters." in text_of(nothing)


async def test_the_turn_page_shows_the_job_and_folds_the_polls(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    queued_at = NOW - timedelta(minutes=10)
    polls = (
        Poll(timedelta(seconds=1), AttemptOutcome.SUBMITTED),
        *(Poll(timedelta(seconds=10 * i), AttemptOutcome.PENDING) for i in range(1, 6)),
        Poll(timedelta(seconds=70), AttemptOutcome.FAILED, error_kind=None),
        Poll(timedelta(seconds=80), AttemptOutcome.SUBMITTED),
        Poll(timedelta(seconds=90), AttemptOutcome.PENDING),
        Poll(timedelta(minutes=6), AttemptOutcome.OK),
    )
    turn_id = await deferred_turn(
        factory,
        state=JobState.DONE,
        queued_at=queued_at,
        finished_at=queued_at + timedelta(minutes=6, seconds=3),
        polls=polls,
        last_error="Request errored: <b>overloaded</b>",
    )
    await log_in(client)
    page = (await client.get(f"/admin/turns/{turn_id}")).text
    assert texts(page, "job-backend") == ["anthropic_batch"]
    assert texts(page, "job-state") == ["done"]
    assert texts(page, "job-queued-at") == [f"{format_time(queued_at)} UTC"]
    assert texts(page, "job-expires-at") == [f"{format_time(queued_at + timedelta(hours=24))} UTC"]
    assert texts(page, "job-batch-id") == [BATCH]
    assert (texts(page, "job-submissions"), texts(page, "job-polls")) == (["2"], ["1"])
    assert texts(page, "job-wait") == ["6 min 3 s"]
    assert texts(page, "job-outcome") == [job_outcome_of(JobState.DONE, submissions=2)]
    assert "Request errored: &lt;b&gt;overloaded&lt;/b&gt;" in page  # escaped
    assert texts(page, "job-unavailable") == [", ".join(UNAVAILABLE)]
    assert "deferral (anthropic claude-sonnet-4-6)" in text_of(page)

    rows = re.findall(
        r'data-testid="attempt" data-outcome="(\w+)" data-tier="(\w+)"(?: data-count="(\d+)")?',
        page,
    )
    assert rows == [
        ("failed", "sonnet", ""),
        ("failed", "haiku", ""),
        ("failed", "openai", ""),
        ("submitted", "deferral", ""),
        ("pending", "deferral", "5"),  # five polls in a row: one row
        ("failed", "deferral", ""),
        ("submitted", "deferral", ""),
        ("pending", "deferral", ""),  # after the resubmission: a run of its own
        ("ok", "deferral", ""),
    ]
    assert "5-9" in page and "pending \N{MULTIPLICATION SIGN}5" in page
    assert texts(page, "attempt-note") == [
        OUTCOME_NOTES[AttemptOutcome.SUBMITTED],
        OUTCOME_NOTES[AttemptOutcome.PENDING],
        OUTCOME_NOTES[AttemptOutcome.SUBMITTED],
        OUTCOME_NOTES[AttemptOutcome.PENDING],
    ]
    assert page.count(f'<code class="admin-model">{BATCH}</code>') == 6  # each row's request id
    assert page.count(BATCH) == 7  # and once more, as the job's batch id


async def test_a_queued_turns_page_says_it_waits(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    turn_id = await deferred_turn(
        factory, state=JobState.WAITING, queued_at=NOW - 2 * MINUTE, batch_id=None
    )
    plain = await turn(factory, "haiku")
    await log_in(client)
    page = (await client.get(f"/admin/turns/{turn_id}")).text
    assert texts(page, "turn-status") == ["queued"]
    assert "not yet (queued)" in text_of(page)
    assert texts(page, "job-wait") == ["2 min so far"]
    assert texts(page, "job-outcome") == [job_outcome_of(JobState.WAITING)]
    assert 'data-testid="job-batch-id"' not in page
    assert "Next look" in page
    assert 'data-testid="turn-job"' not in (await client.get(f"/admin/turns/{plain}")).text


async def test_the_csv_has_the_queue_columns(client: httpx.AsyncClient, factory: Factory) -> None:
    queued_at = NOW - timedelta(hours=1)
    delayed = await deferred_turn(
        factory,
        state=JobState.DONE,
        queued_at=queued_at,
        finished_at=queued_at + timedelta(seconds=95),
    )
    queued = await deferred_turn(factory, state=JobState.WAITING, queued_at=NOW - MINUTE)
    haiku = await turn(factory, "haiku")
    await log_in(client)
    delayed_csv = await client.get("/admin/degraded.csv?kind=delayed")
    [row] = list(csv.DictReader(io.StringIO(delayed_csv.text)))
    assert (row["turn_id"], row["deferral_backend"], row["queued_at"], row["wait_ms"]) == (
        delayed,
        "anthropic_batch",
        queued_at.isoformat(),
        "95000",
    )
    assert "understudy-delayed-" in delayed_csv.headers["content-disposition"]
    queued_csv = await client.get("/admin/degraded.csv?kind=queued")
    queued_rows = list(csv.DictReader(io.StringIO(queued_csv.text)))
    # An open job has no wait yet: its age would depend on when the file was made.
    assert [(r["turn_id"], r["wait_ms"]) for r in queued_rows] == [(queued, "")]
    degraded_csv = await client.get("/admin/degraded.csv")
    by_id = {r["turn_id"]: r for r in csv.DictReader(io.StringIO(degraded_csv.text))}
    assert by_id[haiku]["deferral_backend"] == "" and by_id[delayed]["wait_ms"] == "95000"


def job_outcome_of(state: JobState, submissions: int = 0) -> str:
    """The page's sentence for a job in ``state`` after ``submissions``."""
    job = JobView(
        "t", "anthropic_batch", state, (), NOW, NOW, NOW, None, None, submissions, 0, None, None
    )
    return job_outcome(job)
