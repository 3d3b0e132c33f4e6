"""bench/chaos.py's own parts: the seeded fault schedule, and the prompt the checks expect each
model to have answered (held against the app's real history, so the bench cannot drift from it)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from web.db import chat
from web.db.migrate import upgrade_database
from web.db.session import make_engine, make_sessionmaker
from web.db.turnlog import record_outcome
from web.events import AttemptRecord
from web.providers.base import ErrorKind
from web.sim.faults import KINDS, parse_fault

from support.outcomes import SONNET, answer, failed, no_answer, ok, stopped

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from chaos_check import read_turn_log
from chaos_faults import PERIOD_DECK, PeriodKind, Schedule

TIERS = [("sonnet", "claude-sonnet-4-6"), ("haiku", "claude-haiku-4-5-20251001")]
OWNER = "c" * 64


def schedule(seed: int) -> Schedule:
    return Schedule(seed, TIERS, reply_tokens=40, first_token_s=3.0, idle_s=3.0)


def test_a_seed_repeats_its_schedule_and_another_seed_does_not() -> None:
    first, again, other = schedule(7), schedule(7), schedule(8)
    periods = [first.next_period() for _ in range(30)]
    assert periods == [again.next_period() for _ in range(30)]
    assert periods != [other.next_period() for _ in range(30)]


@pytest.mark.parametrize("seed", range(5))
def test_a_short_run_sees_every_kind_all_down_and_healthy(seed: int) -> None:
    dealt = schedule(seed)
    periods = [dealt.next_period() for _ in range(2 * len(PERIOD_DECK))]
    kinds = {fault.kind for period in periods for fault in period.faults}
    assert kinds == set(KINDS)
    assert {p.kind for p in periods[: len(PERIOD_DECK)]} == set(PeriodKind)
    for period in periods:
        for fault in period.faults:
            parse_fault(fault.body(), "f1")  # the simulator takes every one
        if period.kind is PeriodKind.ALL_DOWN:
            assert [f.tier for f in period.faults] == [name for name, _ in TIERS]
            assert all(f.count is None for f in period.faults)
        if period.kind is PeriodKind.HEALTHY:
            assert period.faults == ()


async def test_the_expected_prompt_is_what_the_app_sends_the_model(tmp_path: Path) -> None:
    """Failed and empty replies leave the user's messages to be joined: the bench must expect
    the reply to the joined prompt, exactly as the app builds it."""
    database = tmp_path / "understudy.db"
    url = f"sqlite+aiosqlite:///{database}"
    await asyncio.to_thread(upgrade_database, url)
    engine = make_engine(url)
    sent: dict[str, str] = {}
    try:
        sessions = make_sessionmaker(engine)
        new = await chat.start_conversation(sessions, OWNER, "one")
        conversation = new.conversation_id
        sent[new.turn_id] = new.history[-1].content
        await record_outcome(sessions, new.turn_id, no_answer("down", (failed_try(),)))
        outcomes = [
            answer(SONNET, "Reply to one and two.", (ok(SONNET, 1),)),
            stopped("", None, ()),
            stopped("Part of a reply", SONNET, ()),
            no_answer("down", (failed_try(),)),
            None,  # still pending when the next message comes
            answer(SONNET, "Last.", (ok(SONNET, 1),)),
        ]
        for number, outcome in enumerate(outcomes, start=2):
            new = await chat.add_user_message(sessions, OWNER, conversation, f"message {number}")
            sent[new.turn_id] = new.history[-1].content
            if outcome is not None:
                await record_outcome(sessions, new.turn_id, outcome)
    finally:
        await engine.dispose()
    turns = read_turn_log(database).turns
    assert {t.id: t.prompt for t in turns} == sent
    assert "one\n\nmessage 2" in sent.values()  # the case that matters did happen


def failed_try() -> AttemptRecord:
    return failed(SONNET, 1, ErrorKind.OVERLOADED, 529)
