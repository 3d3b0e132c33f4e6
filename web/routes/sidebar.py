"""The sidebar's list of conversations, refreshed in place.

    GET /sidebar?current={id}&shown={n}   the list (the <ul>), n conversations deep

static/chat-chrome.js asks for it when a reply starts or lands in the conversation on screen,
and every POLL_S seconds while some listed conversation has a reply being written (the list says
so in ``data-activity``), so the markers change without a reload while the user is elsewhere.
Polling stops by itself once nothing is being written, and a hidden tab does not poll. Why
polling and not a stream of its own: a reply takes seconds to a minute and a marker may lag a
couple of seconds, so one cheap indexed query now and then while something is being written costs
less than a second long-lived connection per tab, and needs nothing from the reply's producer.

``current`` is the conversation on screen: a reply that landed in it has been seen
(web.db.sidebar). ``shown`` keeps the pages a user opened with "Show older".
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from web.db.sidebar import LIST_LIMIT, ConversationPage, conversation_page
from web.deps import OwnerDep, SessionsDep, templates_of
from web.routes.admin_render import NO_STORE

router = APIRouter()

POLL_S = 2
"""How often the page asks again while a listed reply is being written."""


def list_context(listed: ConversationPage, current_id: str | None) -> dict[str, Any]:
    """What templates/_conversation_list.html and _conversation_items.html read."""
    return {
        "conversations": listed.rows,
        "older": listed.older,
        "current_id": current_id,
        "poll_ms": POLL_S * 1000,
    }


@router.get("/sidebar", response_class=HTMLResponse)
async def sidebar(
    request: Request,
    owner: OwnerDep,
    sessions: SessionsDep,
    current: str | None = None,
    shown: int = LIST_LIMIT,
) -> HTMLResponse:
    listed = await conversation_page(sessions, owner, limit=max(shown, LIST_LIMIT), current=current)
    html = (
        templates_of(request)
        .get_template("_conversation_list.html")
        .render(**list_context(listed, current))
    )
    return HTMLResponse(html, headers=NO_STORE)
