"""`understudy serve --workers 2` as a user runs it, on PostgreSQL and Redis, in demo mode: one
port served by two worker processes that share the session key, the admin password and the
parent's simulator; SIGTERM stops them all.

Which worker answered is read from the database, not from the response: every turn records the
process that opened it (turns.process_id), and every worker announces its pid (processes)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import START_TIMEOUT_S, LiveApp, start_live_app

from support.chat import CSRF, ChatClient
from support.cluster import REDIS_URL, redis_or_skip
from support.database import create_pg_database, drop_pg_database
from support.pg_rows import pg_rows
from support.waiting import wait_until

TRIES = 60
"""New connections to try before concluding that one worker never answers (the kernel hands
each connection to whichever worker accepts first: usually both within a few)."""
PASSWORD_LINE = re.compile(r"Admin page /admin password for this run \([^)]*\): (\S+)")


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[LiveApp]:
    redis_or_skip()
    database_url = create_pg_database()
    app = start_live_app(
        tmp_path,
        serve_args=["--workers", "2"],
        env={
            "UNDERSTUDY_DATABASE_URL": database_url,
            "UNDERSTUDY_REDIS_URL": REDIS_URL,
            "UNDERSTUDY_REDIS_PREFIX": f"understudy-test-{uuid.uuid4().hex[:12]}:",
            "UNDERSTUDY_ADMIN_PASSWORD": None,  # the parent makes one for every worker
            "UNDERSTUDY_NEW_CHATS_PER_MINUTE": "1000",
        },
    )
    app.database_url = database_url
    try:
        yield app
    finally:
        app.stop()
        drop_pg_database(database_url)


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def test_two_workers_share_one_port_one_session_key_one_password_and_one_simulator(
    workers: LiveApp,
) -> None:
    app = workers
    announced = lambda: pg_rows(app.database_url, "SELECT id, pid FROM processes")  # noqa: E731
    wait_until(lambda: len(announced()) == 2, "both workers to announce", START_TIMEOUT_S)
    pids = {row["id"]: row["pid"] for row in announced()}
    assert all(parent_of(pid) == app.process.pid for pid in pids.values())

    app.reset()  # through /_sim: fast replies from the parent's simulator
    log = app.log()
    [password] = PASSWORD_LINE.findall(log)  # printed once, by the parent
    assert log.count("Understudy is running at") == 1

    # One browser session; every request on a new connection, until both workers answered.
    chat = ChatClient(app.url)
    chat.http.headers["Connection"] = "close"
    first = chat.new_conversation("Hello?")
    served_by: set[str] = set()
    for _ in range(TRIES):
        conversation_id = chat.new_conversation("Which worker are you?")
        [row] = pg_rows(
            app.database_url,
            "SELECT process_id FROM turns WHERE conversation_id = $1",
            conversation_id,
        )
        served_by.add(row["process_id"])
        assert chat.page(first).status_code == 200  # the cookie opens it on either worker
        if len(served_by) == 2:
            break
    assert served_by == set(pids)

    # The parent's password logs in whichever worker answers; a wrong one does not.
    for _ in range(4):
        refused = chat.post("/admin/login", {"password": "not-it"}, htmx=False)
        assert refused.status_code == 401
        login = chat.post("/admin/login", {"password": password}, htmx=False)
        assert login.status_code == 303, login.text
        page = chat.http.get("/")  # a login rotates the session: its new CSRF token
        match = CSRF.search(page.text)
        assert match is not None
        chat.csrf = match.group(1)
    chat.close()

    # A fault set through one worker is the simulator's, seen through every worker.
    app.set_fault("claude-sonnet-4-6", "status", status=529)
    for _ in range(6):
        faults = httpx.get(f"{app.url}/_sim/faults", headers={"Connection": "close"}).json()
        assert [f["model"] for f in faults] == ["claude-sonnet-4-6"]

    assert app.stop() == 0
    for pid in pids.values():
        assert not Path(f"/proc/{pid}").exists()
    assert pg_rows(app.database_url, "SELECT id FROM processes") == []
