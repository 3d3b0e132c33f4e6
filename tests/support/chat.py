"""An HTTP client that behaves like one browser session of the chat (cookie, CSRF token, SSE),
and the fixtures that open one or two of them on the live server."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from tests.conftest import LiveApp

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
STATE = re.compile(r'data-turn="([0-9a-f]+)" data-tier="([^"]*)" data-state="([a-z]+)"')


@dataclass(frozen=True)
class SSEEvent:
    event: str
    data: str


class ChatClient:
    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=15.0)
        page = self.http.get("/")
        page.raise_for_status()
        match = CSRF.search(page.text)
        assert match, "the page has no CSRF token"
        self.csrf = match.group(1)

    def close(self) -> None:
        self.http.close()

    def elsewhere(self, url: str) -> ChatClient:
        """The same browser session talking to another server of the deployment (its cookie and
        CSRF token; the servers share the session signing key)."""
        other = ChatClient.__new__(ChatClient)
        other.http = httpx.Client(base_url=url, timeout=15.0, cookies=self.http.cookies)
        other.csrf = self.csrf
        return other

    def post(
        self, path: str, data: dict[str, str] | None = None, htmx: bool = True
    ) -> httpx.Response:
        headers = {"X-CSRF-Token": self.csrf}
        if htmx:
            headers["HX-Request"] = "true"
        return self.http.post(path, data=data or {}, headers=headers)

    def new_conversation(self, text: str) -> str:
        reply = self.post("/c", {"content": text})
        assert reply.status_code == 200, reply.text
        location = reply.headers["HX-Redirect"]
        assert location.startswith("/c/")
        return location.removeprefix("/c/")

    def send(self, conversation_id: str, text: str) -> httpx.Response:
        return self.post(f"/c/{conversation_id}/messages", {"content": text})

    def page(self, conversation_id: str) -> httpx.Response:
        return self.http.get(f"/c/{conversation_id}")

    def turns(self, conversation_id: str) -> list[tuple[str, str, str]]:
        """(turn id, tier, state) of every reply on the page, in order."""
        page = self.page(conversation_id)
        page.raise_for_status()
        return STATE.findall(page.text)

    def last_turn(self, conversation_id: str) -> str:
        return self.turns(conversation_id)[-1][0]

    def stream(
        self, conversation_id: str, turn_id: str, *, limit: int | None = None
    ) -> list[SSEEvent]:
        """The stream's events until it closes (or `limit` events, then disconnect)."""
        events: list[SSEEvent] = []
        name, data = "message", []
        path = f"/c/{conversation_id}/turns/{turn_id}/stream"
        with self.http.stream("GET", path, headers={"Accept": "text/event-stream"}) as reply:
            assert reply.status_code == 200, reply.read()
            for line in reply.iter_lines():
                if line.startswith(":"):
                    continue
                if not line:
                    if data:
                        events.append(SSEEvent(name, "\n".join(data)))
                        if limit is not None and len(events) >= limit:
                            break
                    name, data = "message", []
                elif line.startswith("event:"):
                    name = line.removeprefix("event:").strip()
                elif line.startswith("data:"):
                    data.append(line.removeprefix("data:").removeprefix(" "))
        return events

    def finish(self, conversation_id: str, turn_id: str) -> list[SSEEvent]:
        """Follow the turn's stream to its end."""
        events = self.stream(conversation_id, turn_id)
        assert events and events[-1].event == "done", events
        return events


# Named `client` (the function has another name so that a module which imports it to override
# tests/routes' in-process `client` does not shadow the import in its tests' signatures).
@pytest.fixture(name="client")
def live_client(live_app: LiveApp) -> Iterator[ChatClient]:
    """One browser session on the live server."""
    chat = ChatClient(live_app.url)
    yield chat
    chat.close()


@pytest.fixture
def stranger(live_app: LiveApp) -> Iterator[ChatClient]:
    """Another browser session."""
    chat = ChatClient(live_app.url)
    yield chat
    chat.close()
