"""One chat of the chaos bench: a browser session that talks to the app as the page does.

A session opens the home page (its cookie and CSRF token), then sends messages back to back: a
POST, then the reply's SSE stream to its final "done" event, then the next message. Now and then
it starts a new conversation (POST /c, then the conversation page, as htmx's HX-Redirect makes
the browser do), presses Stop while a reply streams, or "reloads": drops the stream mid-reply,
loads the conversation page again and follows the stream it names (or reads the final reply from
the page when the turn has ended). A stream that closes without "done" is reopened, as the
browser's EventSource does.

Every request is bounded by the turn's hard limit (deadline plus margin, from the message's
POST): a request still open then counts as hung and is dropped. Each message's story is one
:class:`TurnRecord`, which the checks (``chaos_check``) hold against the pages and the turn log.
"""

from __future__ import annotations

import asyncio
import html
import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import httpx

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
STREAM_URL = re.compile(r'sse-connect="(/c/[0-9a-f]+/turns/([0-9a-f]+)/stream)"')
REPLY = re.compile(
    r'<article class="msg msg-assistant" id="reply-([0-9a-f]+)"[^>]*?'
    r'data-tier="([^"]*)" data-state="([a-z]+)"'
)
BODY = re.compile(
    r'(?:data-testid="reply-body"|id="body-[0-9a-f]+" hx-swap-oob="innerHTML")>(.*?)</div>', re.S
)
MAX_REOPENS = 5
"""A stream that keeps closing without its final event is reopened at most this often."""


def raw_text(fragment: str, turn_id: str) -> str | None:
    """The reply's exact text, from the <template> a finished reply carries (None: no template)."""
    found = re.search(rf'<template id="raw-{turn_id}">(.*?)</template>', fragment, re.S)
    return html.unescape(found.group(1)) if found else None


class Action(StrEnum):
    PLAIN = "plain"
    STOP = "stop"
    RELOAD = "reload"


@dataclass
class TurnRecord:
    """One message sent and what became of its reply, as the session saw it."""

    chat: int
    message: str
    """What the user typed: unique in the run, so the checks find its turn by it."""
    action: Action
    new_conversation: bool
    started: float
    conversation: str | None = None
    turn_id: str | None = None
    accepted: int | None = None
    """The POST's HTTP status (None: no answer)."""
    first_text: float | None = None
    ended: float | None = None
    state: str | None = None
    """The final reply's data-state: done, stopped or failed (None: never seen)."""
    tier: str | None = None
    text: str | None = None
    open: str | None = None
    """The request under way (what a hang would be blamed on)."""
    hung: str | None = None
    """What was still open at the hard limit."""
    error: str | None = None
    """A transport error that ended the turn for this session (the POST, or a page)."""
    reopened: int = 0
    reloaded: bool = False
    stop_status: int | None = None

    @property
    def ttft_s(self) -> float | None:
        return None if self.first_text is None else self.first_text - self.started


@dataclass
class HttpLog:
    """Every non-2xx answer the app gave, by status; the first ones in full."""

    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    client_errors: list[str] = field(default_factory=list)

    def note(self, method: str, path: str, response: httpx.Response, body: str = "") -> None:
        status = response.status_code
        if status < 400:
            return
        self.statuses[status] += 1
        line = f"{method} {path} -> {status}: {' '.join(body.split())[:200]}"
        (self.server_errors if status >= 500 else self.client_errors).append(line)

    @property
    def server_error_count(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)


@dataclass(frozen=True)
class ChatPolicy:
    """How often a session does something other than send the next message."""

    new_conversation: float = 0.05
    stop: float = 0.07
    reload: float = 0.07
    act_within_s: float = 4.0
    """Stop and reload happen uniform(0, this) seconds after the message is sent."""


class HardLimit(Exception):
    """The turn's hard limit passed with a request still open."""


class ChatSession:
    def __init__(
        self,
        index: int,
        url: str,
        *,
        seed: int,
        limit_s: float,
        clock: Callable[[], float],
        http_log: HttpLog,
        policy: ChatPolicy,
    ) -> None:
        self.index = index
        # Reads have no timeout of their own: a wait for a first token may be long; every request
        # runs under the turn's hard limit instead.
        timeout = httpx.Timeout(10.0, read=None)
        self.http = httpx.AsyncClient(base_url=url, timeout=timeout)
        self.rng = random.Random(f"chaos-chat:{seed}:{index}")
        self.limit_s = limit_s
        self.clock = clock
        self.http_log = http_log
        self.policy = policy
        self.csrf = ""
        self.conversations: list[str] = []
        self.records: list[TurnRecord] = []
        self.errors: list[str] = []
        self._sent = 0
        self._fresh = True
        """The next message starts a new conversation."""

    async def run(self, until: float) -> None:
        """Send messages until ``until`` (clock time); the turn under way then is finished."""
        try:
            await self._open()
            while self.clock() < until:
                await self.turn()
                if len(self.records) >= 3 and all(r.error for r in self.records[-3:]):
                    raise RuntimeError("three messages in a row met a transport error")
        except Exception as exc:
            self.errors.append(f"chat {self.index} gave up: {type(exc).__name__}: {exc}")

    async def _open(self) -> None:
        page = await self.http.get("/")
        self.http_log.note("GET", "/", page, page.text)
        page.raise_for_status()
        found = CSRF.search(page.text)
        if found is None:
            raise RuntimeError("the home page has no CSRF token")
        self.csrf = found.group(1)

    def _headers(self) -> dict[str, str]:
        return {"X-CSRF-Token": self.csrf, "HX-Request": "true"}

    def _message(self) -> str:
        self._sent += 1
        # Unique per message, and now and then markdown, HTML and a code fence: the reply echoes
        # the prompt, so the page must escape it.
        extras = ("", "", "", " **bold** & <b>tags</b>", " show me code", " `x < y` > z")
        return f"chaos {self.index}-{self._sent}: hello{self.rng.choice(extras)}"

    async def turn(self) -> None:
        rng, policy = self.rng, self.policy
        new = self._fresh or rng.random() < policy.new_conversation
        self._fresh = False
        roll = rng.random()
        action = (
            Action.STOP
            if roll < policy.stop
            else Action.RELOAD
            if roll < policy.stop + policy.reload
            else Action.PLAIN
        )
        act_after = rng.uniform(0, policy.act_within_s)
        record = TurnRecord(self.index, self._message(), action, new, self.clock())
        self.records.append(record)
        limit = record.started + self.limit_s
        try:
            async with asyncio.timeout(limit - self.clock()):
                path = await (self._create(record) if new else self._send(record))
                if path is not None:
                    await self._watch(record, path, act_after)
        except TimeoutError:
            record.hung = (
                f"{record.open or 'a request'} still open {self.limit_s:g} s after the POST"
            )
        except httpx.TransportError as exc:
            record.error = f"{record.open}: {type(exc).__name__}: {exc}"
            self.errors.append(f"{record.message!r}: {record.error}")
        if record.hung or record.error:
            # That reply may still be running: the next message goes to a new conversation
            # rather than collect a 409 for each message after it.
            self._fresh = True

    async def _create(self, record: TurnRecord) -> str | None:
        record.open = "POST /c"
        sent = await self.http.post("/c", data={"content": record.message}, headers=self._headers())
        record.accepted = sent.status_code
        self.http_log.note("POST", "/c", sent, sent.text)
        record.open = None
        if sent.status_code != 200 or "HX-Redirect" not in sent.headers:
            return None
        record.conversation = sent.headers["HX-Redirect"].removeprefix("/c/")
        self.conversations.append(record.conversation)
        return await self._from_page(record)

    async def _send(self, record: TurnRecord) -> str | None:
        conversation = self.conversations[-1]
        record.conversation = conversation
        path = f"/c/{conversation}/messages"
        record.open = f"POST {path}"
        sent = await self.http.post(path, data={"content": record.message}, headers=self._headers())
        record.accepted = sent.status_code
        self.http_log.note("POST", path, sent, sent.text)
        record.open = None
        if sent.status_code != 200:
            return None
        found = STREAM_URL.search(sent.text)
        if found is None:
            self.errors.append(f"{record.message!r}: the new turn has no stream URL")
            return None
        record.turn_id = found.group(2)
        return found.group(1)

    async def _from_page(self, record: TurnRecord) -> str | None:
        """Load the conversation page: the last reply's stream path, or None when the page
        already shows that reply final (its state is then in the record)."""
        path = f"/c/{record.conversation}"
        record.open = f"GET {path}"
        page = await self.http.get(path)
        self.http_log.note("GET", path, page, page.text)
        record.open = None
        if page.status_code != 200:
            return None
        replies = REPLY.findall(page.text)
        if not replies:
            self.errors.append(f"{record.message!r}: no reply on {path}")
            return None
        turn_id, tier, state = replies[-1]
        if record.turn_id not in (None, turn_id):
            self.errors.append(f"{record.message!r}: {path} shows turn {turn_id} last")
            return None
        record.turn_id = turn_id
        found = STREAM_URL.search(page.text)
        if found is not None and found.group(2) == turn_id:
            return found.group(1)
        self._settle(record, state, tier, raw_text(page.text, turn_id))
        return None

    def _settle(self, record: TurnRecord, state: str, tier: str, text: str | None) -> None:
        record.ended = self.clock()
        record.state, record.tier, record.text = state, tier, text

    async def _watch(self, record: TurnRecord, path: str, act_after: float) -> None:
        """Follow the reply to its final event, with the record's Stop or reload on the way."""
        stopper: asyncio.Task[None] | None = None
        if record.action is Action.STOP:
            stopper = asyncio.create_task(self._stop_later(record, act_after))
        try:
            await self._follow_to_end(record, path, act_after)
        except BaseException:
            if stopper is not None:
                stopper.cancel()
            raise
        if stopper is not None:
            # A Stop already sent is answered once the turn has ended: read that answer (under
            # the hard limit still); one not sent yet has nothing left to stop.
            if record.stop_status is None:
                stopper.cancel()
            record.open = f"POST /c/{record.conversation}/turns/{record.turn_id}/stop"
            try:
                await asyncio.wait([stopper])  # our own cancellation (the hard limit) still raises
            finally:
                stopper.cancel()
            record.open = None
            if not stopper.cancelled() and (failure := stopper.exception()) is not None:
                self.errors.append(f"turn {record.turn_id}: Stop: {type(failure).__name__}")

    async def _follow_to_end(self, record: TurnRecord, path: str, act_after: float) -> None:
        if record.action is Action.RELOAD:
            try:
                async with asyncio.timeout(act_after):
                    await self._follow(record, path)
            except httpx.TransportError as exc:  # reconnected below, as EventSource would
                self.errors.append(f"turn {record.turn_id}: stream {type(exc).__name__}: {exc}")
            except TimeoutError:
                # Our own timer, not the hard limit (that one is outside and still running).
                record.reloaded = True
                next_path = await self._from_page(record)
                if next_path is None:
                    return
                path = next_path
        while record.state is None:
            try:
                await self._follow(record, path)
            except httpx.TransportError as exc:
                # The connection broke: the browser's EventSource reconnects, so do we.
                self.errors.append(f"turn {record.turn_id}: stream {type(exc).__name__}: {exc}")
            if record.state is None:
                record.reopened += 1
                if record.reopened > MAX_REOPENS:
                    self.errors.append(f"turn {record.turn_id}: stream keeps closing")
                    return

    async def _stop_later(self, record: TurnRecord, delay: float) -> None:
        await asyncio.sleep(delay)
        if record.state is not None:
            return
        path = f"/c/{record.conversation}/turns/{record.turn_id}/stop"
        record.stop_status = 0  # sent, not answered yet
        stopped = await self.http.post(path, headers=self._headers())
        record.stop_status = stopped.status_code
        self.http_log.note("POST", path, stopped, stopped.text)

    async def _follow(self, record: TurnRecord, path: str) -> None:
        """Read one connection of the stream; sets the record's final state on "done"."""
        record.open = f"GET {path}"
        event, data = "", []
        async with self.http.stream("GET", path, headers={"Accept": "text/event-stream"}) as reply:
            if reply.status_code != 200:
                body = (await reply.aread()).decode(errors="replace")
                self.http_log.note("GET", path, reply, body)
                record.open = None
                record.state = f"http {reply.status_code}"
                return
            async for line in reply.aiter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].removeprefix(" "))
                elif not line and data:
                    payload, data = "\n".join(data), []
                    if event == "done":
                        record.open = None
                        self._done(record, payload)
                        return
                    shown = BODY.search(payload)
                    if record.first_text is None and shown and shown.group(1).strip():
                        record.first_text = self.clock()
        record.open = None

    def _done(self, record: TurnRecord, payload: str) -> None:
        found = REPLY.search(payload)
        if found is None or found.group(1) != record.turn_id:
            self.errors.append(f"turn {record.turn_id}: a done event without its reply")
            record.state = "?"
            return
        _, tier, state = found.groups()
        text = raw_text(payload, found.group(1))
        self._settle(record, state, tier, text)
        if text and record.first_text is None:  # the whole reply came before any update
            record.first_text = record.ended

    async def aclose(self) -> None:
        await self.http.aclose()
