"""Drive the live app the way the browser does (session cookie, CSRF header, form posts, SSE) and
read its database with the standard library, read-only."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import make_url

FINAL = ("ok", "degraded", "failed", "stopped", "interrupted")


class Browser:
    """One browser session against the live app."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=10.0)
        page = self.http.get("/")
        page.raise_for_status()
        match = re.search(r'"X-CSRF-Token": "([^"]+)"', page.text)
        assert match, "no CSRF token on the home page"
        self.csrf = match.group(1)

    def close(self) -> None:
        self.http.close()

    def post(self, path: str, **form: str) -> httpx.Response:
        return self.http.post(path, data=form, headers={"X-CSRF-Token": self.csrf})

    def new_conversation(self, text: str) -> str:
        """Send the first message; returns the conversation id."""
        response = self.post("/c", content=text)
        assert response.status_code == 303, response.text
        return response.headers["location"].rsplit("/", 1)[1]

    def events(self, conversation_id: str, turn_id: str) -> Iterator[str]:
        """The SSE event names of a turn's stream, as they arrive (the caller may stop early)."""
        for name, _ in self.stream(conversation_id, turn_id):
            yield name

    def stream(self, conversation_id: str, turn_id: str) -> Iterator[tuple[str, str]]:
        """(event name, data) of a turn's stream, as they arrive (the caller may stop early)."""
        path = f"/c/{conversation_id}/turns/{turn_id}/stream"
        with self.http.stream("GET", path, headers={"Accept": "text/event-stream"}) as stream:
            name, data = "", []
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].removeprefix(" "))
                elif not line and name:
                    yield name, "\n".join(data)
                    name, data = "", []


class LogDB:
    """The live app's SQLite database, opened read-only for each query."""

    def __init__(self, database_url: str) -> None:
        self.path = Path(make_url(database_url).database or "")

    def query(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        uri = f"file:{self.path}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True, timeout=5)) as conn:
            conn.row_factory = sqlite3.Row
            return conn.execute(sql, args).fetchall()

    def turn_of(self, conversation_id: str, timeout: float = 5.0) -> str:
        """The latest turn of a conversation (it is committed before the POST returns)."""
        rows = self.query(
            "SELECT id FROM turns WHERE conversation_id = ? ORDER BY started_at DESC LIMIT 1",
            conversation_id,
        )
        assert rows, f"no turn for conversation {conversation_id}"
        return str(rows[0]["id"])

    def turn(self, turn_id: str) -> sqlite3.Row:
        [row] = self.query("SELECT * FROM turns WHERE id = ?", turn_id)
        return row

    def wait_final(self, turn_id: str, timeout: float = 15.0) -> sqlite3.Row:
        deadline = time.monotonic() + timeout
        while True:
            row = self.turn(turn_id)
            if row["status"] in FINAL:
                return row
            assert time.monotonic() < deadline, f"turn {turn_id} still {row['status']}"
            time.sleep(0.05)

    def reply(self, turn_id: str) -> str:
        [row] = self.query(
            "SELECT content FROM messages WHERE turn_id = ? AND role = 'assistant'", turn_id
        )
        return str(row["content"])

    def attempts(self, turn_id: str) -> list[sqlite3.Row]:
        return self.query("SELECT * FROM attempts WHERE turn_id = ? ORDER BY seq", turn_id)
