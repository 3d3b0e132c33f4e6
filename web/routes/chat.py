"""The chat: pages, sending a message, the reply stream, stop, regenerate, rename, delete.

    GET  /                                  a new chat (nothing is stored until the first message)
    POST /c                                 first message: creates the conversation -> /c/{id}
    GET  /c/{id}                            a conversation
    POST /c/{id}/messages                   a message: the user's turn is committed, a reply starts
    GET  /c/{id}/turns/{turn}/stream        SSE: the reply so far, then live updates, then "done"
    POST /c/{id}/turns/{turn}/stop          cancel the reply, keep its partial text
    POST /c/{id}/turns/{turn}/regenerate    a new reply to the same message (also "Retry")
    POST /c/{id}/rename, /c/{id}/delete
    GET  /healthz

POSTs need the session's CSRF token. htmx requests get fragments; plain form posts get redirects.
The prompt only ever travels in POST bodies: the stream URL names a turn, never its text.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from sse_starlette import EventSourceResponse, ServerSentEvent

from web.db import chat as db
from web.db.models import Message, Turn
from web.db.session import Factory
from web.db.turnlog import start_turn
from web.db.writelock import urgent_writes
from web.deps import (
    CSRF,
    OwnerDep,
    RunnerDep,
    SessionsDep,
    SettingsDep,
    is_htmx,
    runner_of,
    sessions_of,
    settings_of,
    templates_of,
)
from web.errors import Conflict, Invalid, TooLarge
from web.providers.base import ChatMessage, ChatRequest
from web.render import escape_chunk
from web.routes.demo import outage_context
from web.runner import Delta, Finished, LiveTurn, TierChange, Update
from web.settings import Settings
from web.views import INTERRUPTED_NOTE, ReplyView, from_live, from_row

router = APIRouter()

TITLE_MAX = 200
BUSY = (
    "A reply is still being written in this conversation. Wait for it to finish or press Stop, "
    "then send again. Your message is still in the box."
)
SSE_PING_S = 15
DELTA_BATCH_S = 0.04


def check_message(content: str, settings: Settings) -> str:
    """The message to store, or a clear refusal. Nothing is stored for a refused message."""
    if not content.strip():
        raise Invalid("Type a message before sending.")
    limit = settings.max_message_chars
    if len(content) > limit:
        raise TooLarge(
            f"Your message is {len(content):,} characters long; the limit is {limit:,}. "
            "Shorten it and send again (nothing was saved)."
        )
    return content


# --- views --------------------------------------------------------------------------------------


class Views:
    """Turns stored rows and live turns into ReplyViews, and renders the reply fragments."""

    def __init__(self, request: Request) -> None:
        settings = settings_of(request)
        self.tiers = {t.name: t for t in settings.tiers}
        self.order = {t.name: i for i, t in enumerate(settings.tiers)}
        self.runner = runner_of(request)
        self.templates = templates_of(request)

    def reply(self, turn: Turn, reply: Message | None) -> ReplyView:
        """The reply as the page shows it: from the runner while live, else as stored.

        A row still marked live that the runner does not know (it finished a moment ago, or its
        outcome could not be written) shows as streaming; its stream then sends the final state.
        """
        live = self.runner.get(turn.id)
        if live is not None:
            return from_live(live)
        return from_row(turn, reply, self.tiers, order=self.order)

    def settled(self, turn: Turn, reply: Message | None) -> ReplyView:
        """The final state of a turn the runner no longer holds (it has been written by then)."""
        view = from_row(turn, reply, self.tiers, order=self.order)
        if view.live:
            return replace(view, state="stopped", note=INTERRUPTED_NOTE)
        return view

    def render(self, name: str, **context: Any) -> str:
        return self.templates.get_template(name).render(**context)

    def done_fragment(self, view: ReplyView) -> str:
        return self.render("_done.html", r=view)


async def _page(
    request: Request,
    owner: str,
    sessions: Factory,
    conversation: db.ConversationRow | None,
) -> HTMLResponse:
    views = Views(request)
    conversations = await db.list_conversations(sessions, owner)
    exchanges = await db.load_exchanges(sessions, owner, conversation.id) if conversation else []
    items = [
        (e.user, views.reply(e.turn, e.reply) if e.turn is not None else None) for e in exchanges
    ]
    streaming = any(r is not None and r.live for _, r in items)
    return templates_of(request).TemplateResponse(
        request,
        "chat.html",
        {
            "conversation": conversation,
            "conversations": conversations,
            "items": items,
            "streaming": streaming,
            "max_chars": settings_of(request).max_message_chars,
            "primary_label": settings_of(request).tiers[0].label,
            "outage": await outage_context(request),
        },
    )


@router.get("/healthz", include_in_schema=False)
async def healthz() -> PlainTextResponse:
    return PlainTextResponse("ok")


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, owner: OwnerDep, sessions: SessionsDep) -> HTMLResponse:
    return await _page(request, owner, sessions, None)


@router.get("/c/{conversation_id}", response_class=HTMLResponse)
async def conversation_page(
    request: Request, conversation_id: str, owner: OwnerDep, sessions: SessionsDep
) -> HTMLResponse:
    conversation = await db.get_conversation(sessions, owner, conversation_id)
    return await _page(request, owner, sessions, conversation)


async def _begin_turn(
    request: Request,
    conversation_id: str,
    user_message_id: int,
    history: tuple[ChatMessage, ...],
) -> LiveTurn:
    """The turn row (before any model is called), then the background task that runs it."""
    with urgent_writes():
        turn_id, _ = await start_turn(
            sessions_of(request), conversation_id=conversation_id, user_message_id=user_message_id
        )
    return await _run_turn(request, db.NewTurn(conversation_id, user_message_id, turn_id, history))


async def _run_turn(request: Request, new: db.NewTurn) -> LiveTurn:
    """The background task that runs a turn whose row is committed."""
    live = runner_of(request).start(
        new.turn_id, new.conversation_id, new.user_message_id, ChatRequest(messages=new.history)
    )
    await asyncio.sleep(0)  # let the turn send its model request before we render the page bits
    return live


@router.post("/c", dependencies=CSRF)
async def new_conversation(
    request: Request,
    owner: OwnerDep,
    sessions: SessionsDep,
    settings: SettingsDep,
    content: Annotated[str, Form()] = "",
) -> Response:
    text = check_message(content, settings)
    with urgent_writes():
        new = await db.start_conversation_with_turn(sessions, owner, text)
    await _run_turn(request, new)
    url = f"/c/{new.conversation_id}"
    if is_htmx(request):
        # A full load of the new page, which opens the reply's stream (once).
        return Response(status_code=200, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


@router.post("/c/{conversation_id}/messages", dependencies=CSRF)
async def send_message(
    request: Request,
    conversation_id: str,
    owner: OwnerDep,
    sessions: SessionsDep,
    runner: RunnerDep,
    settings: SettingsDep,
    content: Annotated[str, Form()] = "",
) -> Response:
    text = check_message(content, settings)
    with runner.claim(conversation_id) as claimed:
        if not claimed:
            raise Conflict(BUSY)
        # Ownership, the insert, the history and the turn row: one transaction, so the model
        # call (which waits for it) starts as early as possible.
        with urgent_writes():
            new = await db.add_user_message_with_turn(sessions, owner, conversation_id, text)
        live = await _run_turn(request, new)
    message_id = new.user_message_id
    if not is_htmx(request):
        return RedirectResponse(f"/c/{conversation_id}", status_code=303)
    views = Views(request)
    user = {"id": message_id, "content": text}
    html = views.render("_exchange.html", user=user, r=from_live(live), status="Generating…")
    return HTMLResponse(html)


@router.get("/c/{conversation_id}/turns/{turn_id}/stream")
async def stream_turn(
    request: Request,
    conversation_id: str,
    turn_id: str,
    owner: OwnerDep,
    sessions: SessionsDep,
    runner: RunnerDep,
) -> EventSourceResponse:
    views = Views(request)
    live = runner.get(turn_id)
    if live is not None and live.conversation_id == conversation_id:
        await db.get_conversation(sessions, owner, conversation_id)
        return EventSourceResponse(_events(views, live), ping=SSE_PING_S)
    # Ended: replay the stored final state and close. Never call a model from here.
    row = await db.get_turn(sessions, owner, conversation_id, turn_id)
    final = views.settled(row.turn, row.reply)
    return EventSourceResponse(_replay(views, final), ping=SSE_PING_S)


async def _replay(views: Views, final: ReplyView) -> AsyncIterator[ServerSentEvent]:
    yield ServerSentEvent(views.done_fragment(final), event="done")


async def _events(views: Views, live: LiveTurn) -> AsyncIterator[ServerSentEvent]:
    # Read the state and the position in one step (no await between), so nothing is shown twice.
    start, snapshot = len(live.updates), from_live(live)
    if live.finished:
        yield ServerSentEvent(views.done_fragment(snapshot), event="done")
        return
    yield ServerSentEvent(views.render("_reply.html", r=snapshot, oob=True), event="snapshot")
    async for batch in live.follow(start):
        events = _coalesce(views, live, batch)
        for event in events:
            yield event
        if events and events[-1].event == "delta":
            # Text that arrives in the next moment goes out in one event: fewer, larger writes
            # (a frame's worth of delay, invisible to a reader; the first token is never held).
            await asyncio.sleep(DELTA_BATCH_S)


def _coalesce(views: Views, live: LiveTurn, batch: list[Update]) -> list[ServerSentEvent]:
    """Consecutive deltas become one event: a reader that fell behind catches up in one write."""
    out: list[ServerSentEvent] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            out.append(ServerSentEvent(escape_chunk("".join(pending)), event="delta"))
            pending.clear()

    for update in batch:
        if isinstance(update, Delta):
            pending.append(update.text)
        elif isinstance(update, TierChange):
            pending.clear()  # text before a tier change is replaced by the new reply
            out.clear()
            view = from_live(live, tier=update.tier, reason=update.reason)
            out.append(
                ServerSentEvent(views.render("_reply.html", r=view, oob=True), event="snapshot")
            )
        elif isinstance(update, Finished):
            flush()
            out.append(ServerSentEvent(views.done_fragment(from_live(live)), event="done"))
    flush()
    return out


async def _owned_turn(
    request: Request, owner: str, conversation_id: str, turn_id: str
) -> db.TurnRow:
    return await db.get_turn(sessions_of(request), owner, conversation_id, turn_id)


@router.post("/c/{conversation_id}/turns/{turn_id}/stop", dependencies=CSRF)
async def stop_turn(
    request: Request,
    conversation_id: str,
    turn_id: str,
    owner: OwnerDep,
    runner: RunnerDep,
) -> Response:
    await _owned_turn(request, owner, conversation_id, turn_id)
    await runner.stop(turn_id)
    row = await _owned_turn(request, owner, conversation_id, turn_id)
    if not is_htmx(request):
        return RedirectResponse(f"/c/{conversation_id}", status_code=303)
    views = Views(request)
    final = (
        views.reply(row.turn, row.reply)
        if runner.get(turn_id)
        else views.settled(row.turn, row.reply)
    )
    return HTMLResponse(views.done_fragment(final))


@router.post("/c/{conversation_id}/turns/{turn_id}/regenerate", dependencies=CSRF)
async def regenerate_turn(
    request: Request,
    conversation_id: str,
    turn_id: str,
    owner: OwnerDep,
    runner: RunnerDep,
) -> Response:
    row = await _owned_turn(request, owner, conversation_id, turn_id)
    user_message_id = row.turn.user_message_id
    with runner.claim(conversation_id) as claimed:
        if not claimed:
            raise Conflict(BUSY.replace(" Your message is still in the box.", ""))
        history = await db.history_for(sessions_of(request), conversation_id, user_message_id)
        live = await _begin_turn(request, conversation_id, user_message_id, history)
    if not is_htmx(request):
        return RedirectResponse(f"/c/{conversation_id}", status_code=303)
    views = Views(request)
    return HTMLResponse(views.render("_turn_swap.html", r=from_live(live), status="Generating…"))


@router.post("/c/{conversation_id}/rename", dependencies=CSRF)
async def rename_conversation(
    request: Request,
    conversation_id: str,
    owner: OwnerDep,
    sessions: SessionsDep,
    title: Annotated[str, Form()] = "",
) -> Response:
    clean = " ".join(title.split())
    if not clean:
        raise Invalid("Give the conversation a name (it cannot be empty).")
    if len(clean) > TITLE_MAX:
        raise TooLarge(f"Names can be at most {TITLE_MAX} characters; this one has {len(clean)}.")
    conversation = await db.rename_conversation(sessions, owner, conversation_id, clean)
    if not is_htmx(request):
        return RedirectResponse(f"/c/{conversation_id}", status_code=303)
    conversations = await db.list_conversations(sessions, owner)
    html = Views(request).render(
        "_renamed.html", conversation=conversation, conversations=conversations
    )
    return HTMLResponse(html)


@router.post("/c/{conversation_id}/delete", dependencies=CSRF)
async def delete_conversation(
    request: Request,
    conversation_id: str,
    owner: OwnerDep,
    sessions: SessionsDep,
    runner: RunnerDep,
) -> Response:
    await db.get_conversation(sessions, owner, conversation_id)
    live = runner.live_in(conversation_id)
    if live is not None:
        await runner.stop(live.turn_id)
    await db.delete_conversation(sessions, owner, conversation_id)
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": "/"})
    return RedirectResponse("/", status_code=303)
