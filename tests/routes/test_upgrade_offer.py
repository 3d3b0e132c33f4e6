""" "Ask Sonnet again" follows the primary's breaker, in the real app in process, on both databases:
not offered (and refused) while it is open, offered again once it is half-open."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from markupsafe import escape

from web.app import create_app
from web.breaker import BreakerState
from web.breaker_store import Breakers
from web.db import chat
from web.db.session import Factory
from web.db.turnlog import record_outcome
from web.providers.base import ErrorKind
from web.state import AppState
from web.wording import upgrade_label, upgrade_unavailable

from .conftest import new_chat, running, settings_for
from support.database import BACKENDS
from support.outcomes import HAIKU, SONNET, answer, failed, ok

pytestmark = BACKENDS


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True)
class Guarded:
    app: FastAPI
    breakers: Breakers
    clock: Clock


@pytest.fixture
async def guarded(factory: Factory, database_url: str, tmp_path: Path) -> AsyncIterator[Guarded]:
    """The app with breakers on the test's clock (the shared live app's breakers are inert)."""
    settings = settings_for(tmp_path, database_url)
    clock = Clock()
    breakers = Breakers({t.name: t.breaker for t in settings.tiers}, clock=clock)
    made = create_app(settings)
    async with running(made, settings, factory, breakers):
        yield Guarded(made, breakers, clock)


async def test_not_offered_while_the_primary_is_open(guarded: Guarded) -> None:
    transport = httpx.ASGITransport(app=guarded.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        made = await new_chat(client, guarded.app, "Hello?")
        state = AppState.of(guarded.app)
        [exchange] = await chat.load_exchanges(state.sessions, made.owner, made.id)
        fast = await chat.regenerate(state.sessions, made.owner, made.id, exchange.user.id)
        attempts = (failed(SONNET, 1, ErrorKind.OVERLOADED, 529), ok(HAIKU, 2))
        await record_outcome(state.sessions, fast.turn_id, answer(HAIKU, "fast", attempts))
        tripped = failed(SONNET, 1, ErrorKind.QUOTA_EXHAUSTED, 429)  # opens it at once
        await guarded.breakers.report("sonnet", tripped, probe=False)
        assert (await guarded.breakers.states())["sonnet"].state is BreakerState.OPEN
        page = (await client.get(f"/c/{made.id}")).text
        assert 'data-testid="tier-badge"' in page  # the fast-mode reply is there...
        assert 'data-testid="upgrade"' not in page  # ...and not offered for an upgrade
        refused = await client.post(
            f"/c/{made.id}/turns/{fast.turn_id}/upgrade",
            headers={"X-CSRF-Token": made.token, "HX-Request": "true"},
        )
        assert refused.status_code == 409
        assert str(escape(upgrade_unavailable("Sonnet"))) in refused.text

        states = await guarded.breakers.states()
        guarded.clock.now = states["sonnet"].until  # open past its time: half-open, a probe
        page = (await client.get(f"/c/{made.id}")).text
        assert 'data-testid="upgrade"' in page and upgrade_label("Sonnet") in page
