"""The chat: pages, sending a message, the reply stream, stop, regenerate, rename.

    GET  /                                  a new chat (nothing is stored until the first message);
                                            ?deleted={id} also offers to undo that delete
    POST /c                                 first message: creates the conversation -> /c/{id}
    GET  /c/{id}                            a conversation (a reply that landed in it is now seen)
    GET  /conversations?before=...          older conversations: sidebar items (htmx) or a page
    POST /c/{id}/messages                   a message: the user's turn is committed, a reply starts
    GET  /c/{id}/turns/{turn}/stream        SSE (web.routes.stream): the reply so far, then updates
    POST /c/{id}/turns/{turn}/stop          cancel the reply, keep its partial text
    POST /c/{id}/turns/{turn}/skip          stop waiting for the tier being asked: ask the next
    POST /c/{id}/turns/{turn}/cancel        withdraw a queued message (web.deferral)
    POST /c/{id}/turns/{turn}/regenerate    a new reply to the same message (also "Retry")
    POST /c/{id}/turns/{turn}/upgrade       "Ask Sonnet again" (web.routes.upgrade)
    POST /c/{id}/rename                     new name; htmx also gets the tab's new <title>
    GET  /degraded-banner                   the degraded-mode banner (polled by the page)
    GET  /healthz

Delete and its undo are web.routes.trash; the sidebar's refresh is web.routes.sidebar; the
reply stream is web.routes.stream.

POSTs need the session's CSRF token. htmx requests get fragments; plain form posts get redirects.
The prompt only ever travels in POST bodies: the stream URL names a turn, never its text.
"""

from __future__ import annotations

import asyncio
import math
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from web.db import chat as db
from web.db import deferred, sidebar
from web.db.models import utcnow
from web.db.session import Factory
from web.db.writelock import urgent_writes
from web.deps import (
    CSRF,
    CommandsDep,
    OwnerDep,
    RunnerDep,
    SessionsDep,
    SettingsDep,
    is_htmx,
    runner_of,
    sessions_of,
    settings_of,
    state_of,
    templates_of,
)
from web.drill_faults import DrillFaults
from web.drills import HEADER as DRILL_HEADER
from web.errors import Conflict, Invalid, TooLarge, TooMany
from web.health import banner_text, tier_health
from web.live import LiveTurn
from web.providers.base import ChatRequest
from web.routes.admin_render import NO_STORE
from web.routes.demo import outage_context
from web.routes.sidebar import list_context
from web.runner import TurnJob
from web.security import csrf_token
from web.settings import Settings
from web.trash import UndoOffer
from web.upgrades import ended_fragment, offer_in, page_replies
from web.views import Replies
from web.wording import REGENERATE_BUSY, REPLY_BUSY, queued_composer_hint

router = APIRouter()

TITLE_MAX = 200


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


def replies_of(request: Request) -> Replies:
    state = state_of(request)
    return Replies(state.settings, state.runner.live_turns, state.templates, state.deferral)


async def _page(
    request: Request,
    owner: str,
    sessions: Factory,
    conversation: db.ConversationRow | None,
    before: str | None = None,
    *,
    undo: UndoOffer | None = None,
) -> HTMLResponse:
    """The chat page. Showing a conversation (GET) records that it was seen (web.db.sidebar)."""
    views = replies_of(request)
    current = conversation.id if conversation and request.method == "GET" else None
    listed = await sidebar.conversation_page(sessions, owner, before, current=current)
    exchanges = await db.load_exchanges(sessions, owner, conversation.id) if conversation else []
    shown = []
    if conversation is not None:
        offer = await offer_in(state_of(request).chain, runner_of(request), conversation.id)
        shown = page_replies(views, exchanges, offer)
    items = list(zip([e.user for e in exchanges], shown, strict=True))
    streaming = any(r is not None and r.live for _, r in items)
    queued = any(r is not None and r.queued for _, r in items)
    return templates_of(request).TemplateResponse(
        request,
        "chat.html",
        {
            "conversation": conversation,
            **list_context(listed, conversation.id if conversation else None),
            "items": items,
            "streaming": streaming,
            "queued": queued,
            "queued_hint": queued_composer_hint(),
            "max_chars": settings_of(request).max_message_chars,
            "primary_label": settings_of(request).tiers[0].label,
            "answer_now_after_s": settings_of(request).answer_now_after_s,
            "outage": await outage_context(request),
            **await _banner_context(request),
            "undo": undo,
        },
        headers=NO_STORE,  # a conversation must not outlive its deletion in a cache
    )


BANNER_POLL_S = 10
"""The degraded-mode banner is refreshed this often (it follows the primary's breaker)."""


async def _banner_context(request: Request) -> dict[str, object]:
    health = await tier_health(state_of(request).chain)
    queued = state_of(request).deferral is not None
    return {"banner": banner_text(health, queued=queued), "banner_poll_s": BANNER_POLL_S}


@router.get("/degraded-banner", response_class=HTMLResponse)
async def degraded_banner(request: Request, _owner: OwnerDep) -> HTMLResponse:
    html = replies_of(request).render("_degraded_banner.html", **await _banner_context(request))
    return HTMLResponse(html, headers=NO_STORE)


@router.api_route("/healthz", methods=["GET", "HEAD"], include_in_schema=False)
async def healthz() -> PlainTextResponse:
    return PlainTextResponse("ok")


@router.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse)
async def home(
    request: Request, owner: OwnerDep, sessions: SessionsDep, deleted: str | None = None
) -> HTMLResponse:
    undo = await state_of(request).trash.offer(owner, deleted) if deleted else None
    return await _page(request, owner, sessions, None, undo=undo)


@router.api_route("/c/{conversation_id}", methods=["GET", "HEAD"], response_class=HTMLResponse)
async def conversation_page(
    request: Request, conversation_id: str, owner: OwnerDep, sessions: SessionsDep
) -> HTMLResponse:
    conversation = await db.get_conversation(sessions, owner, conversation_id)
    return await _page(request, owner, sessions, conversation)


@router.get("/conversations", response_class=HTMLResponse)
async def older_conversations(
    request: Request, owner: OwnerDep, sessions: SessionsDep, before: str | None = None
) -> HTMLResponse:
    if not is_htmx(request):
        return await _page(request, owner, sessions, None, before)
    listed = await sidebar.conversation_page(sessions, owner, before)
    html = replies_of(request).render("_conversation_items.html", **list_context(listed, None))
    return HTMLResponse(html)


def check_new_chat_allowed(request: Request, owner: str) -> None:
    """Refuse a new conversation over the session's limit, before anything is stored."""
    limiter = state_of(request).new_chats
    wait = limiter.retry_after(owner)
    if wait is None:
        limiter.hit(owner)
        return
    seconds = max(1, math.ceil(wait))
    raise TooMany(too_many_new_chats(limiter.limit, seconds), retry_after_s=seconds)


def too_many_new_chats(limit: int, seconds: int) -> str:
    return (
        f"You started {limit} conversations in the last minute, the most one browser session "
        f"may. Try again in {seconds} second{'s' if seconds != 1 else ''}, or continue an "
        "existing conversation. Nothing was saved; your message is still in the box."
    )


async def _drill(request: Request) -> tuple[str | None, DrillFaults | None]:
    """The drill a new turn belongs to (its header names a running one), and the faults it gets
    (its drill's, or an instance-wide drill's): web.drills."""
    return await state_of(request).drills.faults_for(request.headers.get(DRILL_HEADER))


async def _start(request: Request, new: db.NewTurn, drill: DrillFaults | None = None) -> LiveTurn:
    """The background task that runs a turn whose row is committed."""
    request_ = ChatRequest(messages=new.history)
    job = TurnJob(new.turn_id, new.conversation_id, request_, drill=drill, drill_id=new.drill_id)
    live = runner_of(request).start(job)
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
    check_new_chat_allowed(request, owner)
    with urgent_writes():
        drill_id, faults = await _drill(request)
        new = await db.start_conversation(
            sessions, owner, text, drill_id=drill_id, process_id=_process_id(request)
        )
    await _start(request, new, faults)
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
    # Ownership before the claim: another session's conversation is a plain 404 (never "busy",
    # which would tell it exists and is answering), and a stranger never holds its claim.
    await db.get_conversation(sessions, owner, conversation_id)
    with runner.claim(conversation_id) as claimed:
        if not claimed:
            raise Conflict(REPLY_BUSY)
        # Ownership, the insert, the history and the turn row: one transaction, so the model
        # call (which waits for it) starts as early as possible.
        with urgent_writes():
            drill_id, faults = await _drill(request)
            new = await db.add_user_message(
                sessions,
                owner,
                conversation_id,
                text,
                drill_id=drill_id,
                process_id=_process_id(request),
            )
        live = await _start(request, new, faults)
    message_id = new.user_message_id
    if not is_htmx(request):
        return RedirectResponse(f"/c/{conversation_id}", status_code=303)
    views = replies_of(request)
    user = {"id": message_id, "content": text, "created_at": new.created_at}
    html = views.render("_exchange.html", user=user, r=views.from_live(live), status="Generating…")
    return HTMLResponse(html)


def _process_id(request: Request) -> str:
    """This process's id, for the turn it opens: the turn is this process's to run."""
    return state_of(request).process.id


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
    commands: CommandsDep,
) -> Response:
    await _owned_turn(request, owner, conversation_id, turn_id)
    await commands.stop(turn_id)
    row = await _owned_turn(request, owner, conversation_id, turn_id)
    if not is_htmx(request):
        return RedirectResponse(f"/c/{conversation_id}", status_code=303)
    views = replies_of(request)
    if row.turn.status.is_live:  # its process did not answer in time: shown as it is
        return HTMLResponse(views.done_fragment(views.reply(row.turn, row.reply)))
    final = views.settled(row.turn, row.reply)
    state = state_of(request)
    return HTMLResponse(await ended_fragment(views, state, owner, final, row.turn.upgrade_of))


@router.post("/c/{conversation_id}/turns/{turn_id}/skip", dependencies=CSRF)
async def skip_attempt(
    request: Request,
    conversation_id: str,
    turn_id: str,
    owner: OwnerDep,
    commands: CommandsDep,
    attempt: Annotated[int, Form()] = 0,
) -> Response:
    """ "Answer with <next tier> now": stop waiting for the try in progress. The stream shows
    what follows; a try that answered meanwhile (or a reply that ended) is left alone."""
    await _owned_turn(request, owner, conversation_id, turn_id)
    await commands.skip(turn_id, attempt)
    if not is_htmx(request):
        return RedirectResponse(f"/c/{conversation_id}", status_code=303)
    return Response(status_code=204)


@router.post("/c/{conversation_id}/turns/{turn_id}/cancel", dependencies=CSRF)
async def cancel_queued(
    request: Request,
    conversation_id: str,
    turn_id: str,
    owner: OwnerDep,
    sessions: SessionsDep,
) -> Response:
    """Withdraw a queued message: the reply shows "cancelled" at once; the worker cancels its
    batch request. A reply that landed (or ended) meanwhile is left as it is."""
    await _owned_turn(request, owner, conversation_id, turn_id)
    with urgent_writes():
        cancelled = await deferred.cancel(sessions, turn_id, now=utcnow())
    state = state_of(request)
    if cancelled:
        state.landings.notify(turn_id)
        if state.worker is not None:
            state.worker.wake()
    if not is_htmx(request):
        return RedirectResponse(f"/c/{conversation_id}", status_code=303)
    row = await _owned_turn(request, owner, conversation_id, turn_id)
    views = replies_of(request)
    return HTMLResponse(views.done_fragment(views.settled(row.turn, row.reply)))


@router.post("/c/{conversation_id}/turns/{turn_id}/regenerate", dependencies=CSRF)
async def regenerate_turn(
    request: Request,
    conversation_id: str,
    turn_id: str,
    owner: OwnerDep,
    runner: RunnerDep,
) -> Response:
    row = await _owned_turn(request, owner, conversation_id, turn_id)  # before the claim
    user_message_id = row.turn.user_message_id
    with runner.claim(conversation_id) as claimed:
        if not claimed:
            raise Conflict(REGENERATE_BUSY)
        with urgent_writes():
            drill_id, faults = await _drill(request)
            new = await db.regenerate(
                sessions_of(request),
                owner,
                conversation_id,
                user_message_id,
                drill_id=drill_id,
                process_id=_process_id(request),
            )
        live = await _start(request, new, faults)
    if not is_htmx(request):
        return RedirectResponse(f"/c/{conversation_id}", status_code=303)
    views = replies_of(request)
    return HTMLResponse(
        views.render("_turn_swap.html", r=views.from_live(live), status="Generating…")
    )


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
    listed = await sidebar.conversation_page(sessions, owner, current=conversation_id)
    html = replies_of(request).render(
        "_renamed.html",
        conversation=conversation,
        csrf_token=csrf_token(request),  # the redrawn header's forms post without htmx too
        **list_context(listed, conversation_id),
    )
    return HTMLResponse(html)
