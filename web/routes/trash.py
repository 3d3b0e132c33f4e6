"""Delete, its undo, and delete for good now (web.trash says why Delete is undone, not confirmed).

    POST /c/{id}/delete    stop a reply being written in it, hide it -> /?deleted={id}, with Undo
    POST /c/{id}/restore   Undo -> the conversation again
    POST /c/{id}/purge     the Undo offer ended (its timer, or dismissed): remove it for good now

htmx requests get HX-Redirect (or, for purge, an empty fragment); plain form posts get redirects,
so all three work without JavaScript.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from web.db import chat as db
from web.deps import CSRF, CommandsDep, OwnerDep, RunnerDep, SessionsDep, TrashDep, is_htmx

router = APIRouter()


def _go(request: Request, url: str) -> Response:
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


@router.post("/c/{conversation_id}/delete", dependencies=CSRF)
async def delete_conversation(
    request: Request,
    conversation_id: str,
    owner: OwnerDep,
    sessions: SessionsDep,
    runner: RunnerDep,
    commands: CommandsDep,
    trash: TrashDep,
) -> Response:
    await db.get_conversation(sessions, owner, conversation_id)
    # Running here, or (several processes) in another process.
    running = runner.live_in(conversation_id) or await db.live_turn_in(sessions, conversation_id)
    if running is not None:
        await commands.stop(running)
    await trash.delete(owner, conversation_id)
    return _go(request, f"/?deleted={conversation_id}")


@router.post("/c/{conversation_id}/restore", dependencies=CSRF)
async def restore_conversation(
    request: Request, conversation_id: str, owner: OwnerDep, trash: TrashDep
) -> Response:
    await trash.restore(owner, conversation_id)
    return _go(request, f"/c/{conversation_id}")


@router.post("/c/{conversation_id}/purge", dependencies=CSRF)
async def purge_conversation(
    request: Request, conversation_id: str, owner: OwnerDep, trash: TrashDep
) -> Response:
    # Idempotent, and never touches a conversation that is not deleted (one undone meanwhile).
    await trash.purge(owner, conversation_id)
    if is_htmx(request):
        return HTMLResponse("")
    return RedirectResponse("/", status_code=303)
