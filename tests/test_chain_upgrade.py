"""The chain limited to its primary (an upgrade, "Ask Sonnet again"), against the simulator over
loopback: the primary answers or the turn fails; no other tier is ever asked, not as a fallback,
not as a hedge, not as a last resort."""

from __future__ import annotations

from dataclasses import replace

from sim.clock import FakeClock

from web.breaker import BreakerConfig, BreakerState
from web.breaker_store import Breakers
from web.events import tier_infos
from web.hedge import HedgeBudget
from web.providers.base import ErrorKind
from web.settings import Timeouts
from web.status import AttemptOutcome
from web.wording import exhausted_message

from support.engine import DEFAULT_TIERS, HAIKU_TIER, SONNET, SONNET_TIER, Upstream, run_turn
from support.outcomes import failed

INFOS = {info.name: info for info in tier_infos(DEFAULT_TIERS)}
QUICK = BreakerConfig(window_s=60, min_calls=1, failure_rate=0.5, open_s=30, max_open_s=120)


async def test_a_primary_only_turn_is_answered_by_the_primary(upstream: Upstream) -> None:
    chain = upstream.chain()
    turn = await run_turn(chain, primary_only=True)
    await chain.aclose()
    assert turn.completed.tier.name == "sonnet"
    assert turn.completed.degraded_reason is None
    assert [s.next for s in turn.starts] == [None]  # nothing to "answer now" with
    assert await upstream.requests() == {SONNET: 1}


async def test_a_failing_primary_fails_the_turn_and_no_other_tier_is_asked(
    upstream: Upstream,
) -> None:
    await upstream.fault(SONNET, "status", status=529)
    chain = upstream.chain(backoff_s=0.0)
    turn = await run_turn(chain, primary_only=True)
    # Its one same-tier retry, as any try of the primary; then the turn ends.
    assert [(r.tier.name, r.error_kind) for r in turn.attempts] == [
        ("sonnet", ErrorKind.OVERLOADED),
        ("sonnet", ErrorKind.OVERLOADED),
    ]
    assert turn.exhausted.final_kind is ErrorKind.OVERLOADED
    assert turn.exhausted.message == exhausted_message(
        turn.attempts, deadline_s=chain.deadline_s, out_of_time=False, rejected_keys=()
    )
    assert await upstream.requests() == {SONNET: 2}
    # The same fault in an ordinary turn falls back, as before.
    assert (await run_turn(chain)).completed.tier.name == "haiku"
    await chain.aclose()


async def test_a_slow_primary_is_not_hedged(upstream: Upstream) -> None:
    patient = Timeouts(connect_s=1.0, first_token_s=10.0, idle_s=10.0, total_s=20.0)
    hedging = replace(SONNET_TIER, timeouts=patient, hedge_after_s=0.05)
    await upstream.fault(SONNET, "slow_first_token", count=2, delay_s=0.5)
    chain = upstream.chain(
        [hedging, replace(HAIKU_TIER, timeouts=patient)],
        hedge_budget=HedgeBudget(share=1.0, clock=FakeClock()),
    )
    turn = await run_turn(chain, primary_only=True)
    assert turn.completed.tier.name == "sonnet"
    assert [r.hedge for r in turn.attempts] == [None]
    assert await upstream.requests() == {SONNET: 1}
    hedged = await run_turn(chain)  # an ordinary turn hedges the slow primary with Haiku
    await chain.aclose()
    assert {r.tier.name for r in hedged.attempts} == {"sonnet", "haiku"}


async def test_an_open_primary_is_not_tried_as_a_last_resort(upstream: Upstream) -> None:
    now = [1_800_000_000.0]
    board = Breakers({t.name: QUICK for t in DEFAULT_TIERS}, clock=lambda: now[0])
    for name in ("sonnet", "haiku", "openai"):  # every tier open, Sonnet first
        await board.report(name, failed(INFOS[name], 1, ErrorKind.OVERLOADED, 529), probe=False)
        now[0] += 1
    assert {s.state for s in (await board.states()).values()} == {BreakerState.OPEN}
    chain = upstream.chain(breakers=board)
    turn = await run_turn(chain, primary_only=True)
    assert [(r.tier.name, r.outcome) for r in turn.attempts] == [("sonnet", AttemptOutcome.SKIPPED)]
    assert turn.exhausted.final_kind is None
    assert await upstream.requests() == {}
    # An ordinary turn tries the tier that opened first rather than refuse without trying.
    ordinary = await run_turn(chain)
    await chain.aclose()
    assert ordinary.completed.tier.name == "sonnet"


async def test_a_half_open_primary_gets_the_upgrade_as_its_probe(upstream: Upstream) -> None:
    now = [1_800_000_000.0]
    board = Breakers({t.name: QUICK for t in DEFAULT_TIERS}, clock=lambda: now[0])
    await board.report("sonnet", failed(INFOS["sonnet"], 1, ErrorKind.OVERLOADED, 529), probe=False)
    now[0] += QUICK.open_s
    chain = upstream.chain(breakers=board)
    turn = await run_turn(chain, primary_only=True)
    await chain.aclose()
    assert turn.completed.tier.name == "sonnet"
    assert (await board.states())["sonnet"].state is BreakerState.CLOSED
