"""One user's message, the way the page sends it and shows its reply.

A fresh browser session for each message (its own cookie, as a new visitor: the page's limit on
new conversations per session never throttles a drill): ``GET /`` for the CSRF token, ``POST /c``
with the message as htmx sends it (plus the drill's header), the ``HX-Redirect`` page, then the
reply's SSE stream (``/c/{id}/turns/{turn}/stream``) to its "done". A queued reply is followed
again until it lands, as the page does, for at most ``queue_timeout_s`` (0: a queued reply is
where it ends). A stream that closes
early is opened again (the page reconnects too; the server replays the reply so far).

What is measured is what the user waits for: from the POST to the first words of the reply that
was kept (a reply restarted on another tier counts from its own first words, since the words
shown before were replaced), and to the end.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field

import httpx

from web.status import ReplyState

from .expect import Shown
from .page import Screen, csrf_of, parse, reply_in, stream_of, update_has_text

_REPLY = re.compile(r'id="reply-([0-9a-f]+)"')
RECONNECT_S = 0.5
"""Before a stream that closed without "done" is opened again."""


@dataclass
class Observation:
    """What one message's user saw."""

    prompt: int
    """Its index in the drill's prompts."""
    started_at: float
    """Unix time of the POST."""
    ttft_s: float | None = None
    total_s: float | None = None
    final: Shown | None = None
    queued: Shown | None = None
    """What the reply showed while it was queued (None: never queued)."""
    queued_s: float | None = None
    """How long it stayed queued before it landed."""
    problem: str | None = None
    """Why the user got no reply at all (an HTTP error, no end in time); reply errors are in
    ``final``."""
    tiers_shown: list[str] = field(default_factory=list)
    """Every tier whose words were on screen, in order (a restart shows two)."""
    conversation_id: str | None = None
    turn_id: str | None = None
    reconnects: int = 0


@dataclass(frozen=True)
class SSE:
    event: str
    data: str


Clock = Callable[[], float]


class UserPath:
    """Sends messages to one Understudy as new visitors would."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        turn_timeout_s: float,
        queue_timeout_s: float,
        clock: Clock = time.monotonic,
        transport: httpx.AsyncBaseTransport | None = None,
        first_words_only: bool = False,
    ) -> None:
        self.base_url = base_url
        self.headers = dict(headers or {})
        self.turn_timeout_s = turn_timeout_s
        self.queue_timeout_s = queue_timeout_s
        self.clock = clock
        self.transport = transport
        self.first_words_only = first_words_only
        """Stop at the reply's first words (``final`` is then what it showed then): enough to
        know who answers, without waiting for the rest."""

    async def send(self, index: int, prompt: str) -> Observation:
        seen = Observation(prompt=index, started_at=time.time())
        timeout = httpx.Timeout(10.0, read=self.turn_timeout_s)
        async with httpx.AsyncClient(
            base_url=self.base_url, headers=self.headers, timeout=timeout, transport=self.transport
        ) as http:
            try:
                async with asyncio.timeout(self.turn_timeout_s + self.queue_timeout_s):
                    await self._send(http, prompt, seen)
            except TimeoutError:
                seen.problem = seen.problem or (
                    f"the reply did not end within {self.turn_timeout_s:g} s"
                    if seen.queued is None
                    else f"the queued reply did not land within {self.queue_timeout_s:g} s"
                )
            except httpx.HTTPError as exc:
                seen.problem = f"{type(exc).__name__}: {exc}".rstrip(": ")
        return seen

    async def _send(self, http: httpx.AsyncClient, prompt: str, seen: Observation) -> None:
        home = await http.get("/")
        token = csrf_of(home.text)
        if home.status_code != 200 or token is None:
            seen.problem = f"GET / answered {home.status_code} without a CSRF token"
            return
        start = self.clock()
        seen.started_at = time.time()
        posted = await http.post(
            "/c",
            data={"content": prompt},
            headers={"X-CSRF-Token": token, "HX-Request": "true"},
        )
        location = posted.headers.get("HX-Redirect")
        if posted.status_code != 200 or not location:
            words = parse(posted.text).text()[:300]
            seen.problem = f"POST /c answered {posted.status_code}: {words}"
            return
        seen.conversation_id = location.rsplit("/", 1)[-1]
        page = await http.get(location)
        page.raise_for_status()
        followed = stream_of(page.text)
        if followed is None:  # it ended before the page loaded: all of it shows at once
            turns = _REPLY.findall(page.text)
            screen = reply_in(page.text, turns[-1]) if turns else None
            if screen is None:
                seen.problem = f"{location} shows no reply"
                return
            seen.turn_id = turns[-1]
            self._ended(seen, screen, start)
            return
        path, seen.turn_id = followed
        await self._follow(http, path, seen, start)

    async def _follow(
        self, http: httpx.AsyncClient, path: str, seen: Observation, start: float
    ) -> None:
        assert seen.turn_id is not None
        turn = seen.turn_id
        first_text: dict[str, float] = {}
        shown: Screen | None = None
        queued_at: float | None = None
        while True:
            ended: Screen | None = None
            async with aclosing(_events(http, path)) as events:
                async for event in events:
                    now = self.clock()
                    words = False
                    if event.event in ("snapshot", "done"):
                        shown = reply_in(event.data, turn) or shown
                        words = shown is not None and shown.has_text
                        if event.event == "done":
                            ended = shown
                        elif queued_at is None and shown and shown.shown.state is ReplyState.QUEUED:
                            # A stream opened once the turn was queued starts with that state.
                            seen.queued, queued_at = shown.shown, now
                    elif event.event == "update":
                        words = update_has_text(event.data, turn)
                    if words and shown is not None:
                        _shown_text(seen, first_text, shown.shown.tier, now)
                        if self.first_words_only and ended is None:
                            seen.final, seen.ttft_s = shown.shown, now - start
                            return
                    if ended is not None:
                        break
            if ended is None:
                seen.reconnects += 1
                await asyncio.sleep(RECONNECT_S)
                continue
            if ended.shown.state is ReplyState.QUEUED and self.queue_timeout_s > 0:
                if queued_at is None:
                    seen.queued, queued_at = ended.shown, self.clock()
                continue  # the page follows a queued reply again until it lands
            if queued_at is not None:
                seen.queued_s = self.clock() - queued_at
            self._ended(seen, ended, start, first_text.get(ended.shown.tier))
            return

    def _ended(
        self, seen: Observation, screen: Screen, start: float, first_text: float | None = None
    ) -> None:
        now = self.clock()
        seen.final = screen.shown
        seen.total_s = now - start
        if screen.has_text:
            # A reply that arrived whole (replayed, or landed from the queue) showed its first
            # words when it ended.
            seen.ttft_s = (first_text if first_text is not None else now) - start
            if not seen.tiers_shown or seen.tiers_shown[-1] != screen.shown.tier:
                seen.tiers_shown.append(screen.shown.tier)


def _shown_text(seen: Observation, first_text: dict[str, float], tier: str, now: float) -> None:
    if tier and tier not in first_text:
        first_text[tier] = now
        seen.tiers_shown.append(tier)


async def _events(http: httpx.AsyncClient, path: str) -> AsyncGenerator[SSE, None]:
    """The stream's events until it closes."""
    name = "message"
    data: list[str] = []
    async with http.stream("GET", path, headers={"Accept": "text/event-stream"}) as reply:
        reply.raise_for_status()
        async for line in reply.aiter_lines():
            if line.startswith(":"):
                continue
            if not line:
                if data:
                    yield SSE(name, "\n".join(data))
                name, data = "message", []
            elif line.startswith("event:"):
                name = line.removeprefix("event:").strip()
            elif line.startswith("data:"):
                data.append(line.removeprefix("data:").removeprefix(" "))
