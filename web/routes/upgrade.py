""" "Ask Sonnet again": POST /c/{id}/turns/{turn}/upgrade (the policy is :mod:`web.upgrades`).

Like Regenerate: the session's CSRF token, ownership before the claim (another session's turn is a
plain 404, never "busy"), the conversation claimed so that no other turn starts beside it. Then,
under the claim, the same checks that decided to offer the action: the turn is the reply of the
latest message, it is degraded, and the primary's breaker is not open (409 with the reason
otherwise). htmx gets the new turn block, which replaces the degraded one's.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from web.db import chat as db
from web.db.writelock import urgent_writes
from web.deps import CSRF, OwnerDep, RunnerDep, SessionsDep, is_htmx, state_of
from web.errors import Conflict
from web.providers.base import ChatRequest
from web.routes.chat import replies_of
from web.runner import TurnJob
from web.upgrades import offer_in, shown
from web.wording import UPGRADE_BUSY, UPGRADE_NOT_OFFERED, upgrade_unavailable

router = APIRouter()


@router.post("/c/{conversation_id}/turns/{turn_id}/upgrade", dependencies=CSRF)
async def upgrade_turn(
    request: Request,
    conversation_id: str,
    turn_id: str,
    owner: OwnerDep,
    sessions: SessionsDep,
    runner: RunnerDep,
) -> Response:
    await db.get_turn(sessions, owner, conversation_id, turn_id)  # 404 before the claim
    views = replies_of(request)
    chain = state_of(request).chain
    with runner.claim(conversation_id) as claimed:
        if not claimed:
            raise Conflict(UPGRADE_BUSY)
        exchange = await db.load_exchange(sessions, owner, conversation_id, turn_id=turn_id)
        offer = await offer_in(chain, runner, conversation_id)
        assert exchange is not None and exchange.turn is not None
        if not offer.primary_available:
            raise Conflict(upgrade_unavailable(offer.primary.label))
        current = views.reply(exchange.turn, exchange.reply)
        if exchange.turn.id != turn_id or offer.label(current, exchange) is None:
            raise Conflict(UPGRADE_NOT_OFFERED)  # replaced since, not degraded, not the latest
        with urgent_writes():
            new = await db.upgrade(
                sessions, owner, conversation_id, turn_id, process_id=state_of(request).process.id
            )
        job = TurnJob(
            new.turn_id, conversation_id, ChatRequest(messages=new.history), upgrade_of=turn_id
        )
        runner.start(job)
        await asyncio.sleep(0)  # let the turn send its model request before we render
    if not is_htmx(request):
        return RedirectResponse(f"/c/{conversation_id}", status_code=303)
    upgrading = await db.load_exchange(sessions, owner, conversation_id, turn_id=new.turn_id)
    assert upgrading is not None
    view = shown(views, upgrading, await offer_in(chain, runner, conversation_id))
    html = views.render("_turn_swap.html", r=view, status="Generating…")
    return HTMLResponse(html)
