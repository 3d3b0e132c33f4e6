"""The reply stream: GET /c/{id}/turns/{turn}/stream (SSE).

A live turn streams its state so far, then what changes, then "done"; a queued turn (web.deferral)
sends its state ("queued") and then nothing until its reply lands (or it is cancelled, or fails),
then "done"; a turn that has
ended replays its stored final state and closes. Never a model call from here: the runner owns the
turn, and a watcher only follows it (so a reload or a second tab costs nothing upstream).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from fastapi import APIRouter, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from web.db import chat as db
from web.db.deferred import turn_status
from web.db.session import Factory
from web.deps import OwnerDep, RunnerDep, SessionsDep, state_of
from web.errors import NotFound
from web.landings import Landings
from web.live import LiveTurn, Subscription
from web.routes.chat import replies_of
from web.status import TurnStatus
from web.upgrades import ended_fragment
from web.views import Replies, ReplyView

router = APIRouter()

SSE_PING_S = 15
BODY_INTERVAL_S = 0.1
"""The body of a streaming reply is re-rendered at most this often (markdown so far)."""
QUEUED_POLL_S = 2.0
"""A queued turn's row is read this often: a worker in another process lands replies too."""


@router.get("/c/{conversation_id}/turns/{turn_id}/stream")
async def stream_turn(
    request: Request,
    conversation_id: str,
    turn_id: str,
    owner: OwnerDep,
    sessions: SessionsDep,
    runner: RunnerDep,
) -> EventSourceResponse:
    views = replies_of(request)
    live_turns = runner.live_turns
    subscription = await live_turns.follow(turn_id)

    async def ended(final: ReplyView, upgrade_of: str | None) -> str:
        try:
            return await ended_fragment(views, state_of(request), owner, final, upgrade_of)
        except NotFound:
            # The session was rotated while the stream was open (an admin login): the reply is
            # still this watcher's; only the offer to upgrade it waits for the next page.
            return views.done_fragment(final)

    async def settle() -> ReplyView:
        """The final state from the database (a turn another process ran, or ran until it died)."""
        row = await db.get_checked_turn(sessions, conversation_id, turn_id)
        return views.settled(row.turn, row.reply)

    if subscription is not None and subscription.turn.conversation_id == conversation_id:
        await db.get_conversation(sessions, owner, conversation_id)
        return EventSourceResponse(_events(views, subscription, ended, settle), ping=SSE_PING_S)
    row = await db.get_turn(sessions, owner, conversation_id, turn_id)
    if row.turn.status.is_live:
        # Running in another process that has not published yet (its POST was just answered).
        expected = live_turns.expect(turn_id, conversation_id, row.turn.upgrade_of)
        if expected is not None:
            return EventSourceResponse(_events(views, expected, ended, settle), ping=SSE_PING_S)
    # Ended: replay the stored final state and close. Never call a model from here.
    if row.turn.status is TurnStatus.QUEUED:
        landings = state_of(request).landings
        now = views.settled(row.turn, row.reply)
        queued = _landing(views, landings, sessions, ended, now, conversation_id, turn_id)
        return EventSourceResponse(queued, ping=SSE_PING_S)
    final = views.settled(row.turn, row.reply)
    return EventSourceResponse(_replay(ended, final, row.turn.upgrade_of), ping=SSE_PING_S)


Ended = Callable[[ReplyView, str | None], Awaitable[str]]
"""The fragment that ends a reply on the page (web.upgrades.ended_fragment)."""


async def _replay(
    ended: Ended, final: ReplyView, upgrade_of: str | None
) -> AsyncIterator[ServerSentEvent]:
    yield ServerSentEvent(await ended(final, upgrade_of), event="done")


async def _landing(
    views: Replies,
    landings: Landings,
    sessions: Factory,
    ended: Ended,
    now: ReplyView,
    conversation_id: str,
    turn_id: str,
) -> AsyncIterator[ServerSentEvent]:
    """A queued turn: its state now, then, once it is no longer queued, its final state.

    The state now comes first, as every stream starts with the reply so far: the page may show
    the turn still running (it was rendered, or its stream dropped, before the chain gave up and
    queued it), and would otherwise say "asking ..." until the reply lands, minutes later."""
    yield ServerSentEvent(views.reply_fragment(now), event="snapshot")
    while True:
        await landings.wait(turn_id, QUEUED_POLL_S)
        if await turn_status(sessions, turn_id) is not TurnStatus.QUEUED:
            break
    row = await db.get_checked_turn(sessions, conversation_id, turn_id)
    final = views.settled(row.turn, row.reply)
    yield ServerSentEvent(await ended(final, row.turn.upgrade_of), event="done")


async def _events(
    views: Replies,
    subscription: Subscription,
    ended: Ended,
    settle: Callable[[], Awaitable[ReplyView]],
) -> AsyncIterator[ServerSentEvent]:
    """The reply so far, then what changes, then "done".

    A subscription to another process's turn ends without a Finished (web.live_redis): the final
    state is then the database's (``settle``).

    "snapshot" replaces the whole reply: when it connects, and when the tier whose text is shown
    changes (its first text, or a restart). "update" swaps parts into the reply on the page: the
    status line while a tier is waited for, and the body, re-rendered from the text so far at
    most every ``BODY_INTERVAL_S`` (the first text is never held), so markdown shows as it
    streams with no reflow at the end.
    """
    reply = subscription.turn
    shown = _Shown.of(reply)
    yield ServerSentEvent(views.reply_fragment(views.from_live(reply)), event="snapshot")
    async for batch in subscription.updates:
        for update in batch:
            reply.apply(update)
        if reply.finished:
            yield ServerSentEvent(
                await ended(views.from_live(reply), reply.upgrade_of), event="done"
            )
            return
        now = _Shown.of(reply)
        events = _changes(views, reply, shown, now)
        shown = now
        for event in events:
            yield event
        if now.text_len and any(e.event == "update" for e in events):
            await asyncio.sleep(BODY_INTERVAL_S)
    final = await settle()
    yield ServerSentEvent(await ended(final, reply.upgrade_of), event="done")


@dataclass(frozen=True)
class _Shown:
    """What a watcher's page shows of a reply, to tell which parts an update changed."""

    tier: str | None
    reason: str | None
    waiting: int | None
    text_len: int

    @classmethod
    def of(cls, reply: LiveTurn) -> _Shown:
        waiting = reply.waiting
        return cls(
            reply.tier.name if reply.tier else None,
            reply.reason,
            waiting.attempt if waiting else None,
            sum(len(p) for p in reply.parts),
        )


def _changes(views: Replies, reply: LiveTurn, before: _Shown, now: _Shown) -> list[ServerSentEvent]:
    status = now.waiting != before.waiting
    body = now.text_len != before.text_len
    same_tier = (now.tier, now.reason) == (before.tier, before.reason)
    if same_tier and body and not status:  # the text grew: by far the most common update
        return [ServerSentEvent(views.body_fragment(reply), event="update")]
    view = views.from_live(reply)
    if not same_tier:
        events = [ServerSentEvent(views.reply_fragment(view, quiet=True), event="snapshot")]
        if view.status:  # announced: the region is on the page, empty, before it gets its text
            html = views.update_fragment(view, status=True, body=False)
            events.append(ServerSentEvent(html, event="update"))
        return events
    if not (status or body):
        return []
    return [ServerSentEvent(views.update_fragment(view, status=status, body=body), event="update")]
