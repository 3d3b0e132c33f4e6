from __future__ import annotations

from typing import Any

import pytest

from web.sim.fault_registry import FaultRegistry
from web.sim.faults import KINDS, FaultError, FaultOutOfBounds, parse_fault
from web.sim.limits import MAX_DELAY_S, MAX_SEED

from .clock import FakeClock


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "must be a JSON object"),
        ({"kind": "reset"}, '"model" is required'),
        ({"model": "m", "kind": "explode"}, '"kind" must be one of status, reset, hang'),
        ({"model": "m", "kind": "status"}, '"status" is required'),
        ({"model": "m", "kind": "status", "status": 200}, '"status" must be between 400 and 599'),
        ({"model": "m", "kind": "status", "status": "429"}, '"status" must be a number'),
        ({"model": "m", "kind": "status", "status": 429.5}, '"status" must be a whole number'),
        ({"model": "m", "kind": "status", "status": 429, "retry_after": -1}, "must be >= 0"),
        ({"model": "m", "kind": "cut", "after_tokens": True}, '"after_tokens" must be a number'),
        ({"model": "m", "kind": "cut", "delay_s": 1}, "unknown field(s) for cut: delay_s"),
        ({"model": "m", "kind": "flap", "status": 503}, '"down_s" is required'),
        ({"model": "m", "kind": "slow_first_token"}, '"delay_s" is required'),
        ({"model": "m", "kind": "malformed", "n": 0}, '"n" must be >= 1'),
        ({"model": "m", "kind": "reset", "count": 0}, '"count" must be a whole number >= 1'),
        ({"model": "m", "kind": "reset", "count": "2"}, '"count" must be a whole number >= 1'),
        ({"model": "m", "kind": "reset", "probability": -0.1}, '"probability" must be >= 0'),
        ({"model": "m", "kind": "reset", "probability": "half"}, '"probability" must be a number'),
        ({"model": "m", "kind": "reset", "probability": True}, '"probability" must be a number'),
        ({"model": "m", "kind": "reset", "seed": 3}, '"seed" only applies with a "probability"'),
        ({"model": "m", "kind": "reset", "probability": 0.5, "seed": -1}, '"seed" must be >= 0'),
        ({"model": "m", "kind": "reset", "probability": 0.5, "seed": 1.5}, "a whole number"),
        ({"model": "m", "kind": "no_terminator", "tail": "most"}, '"tail" must be one of drop'),
        ({"model": "m", "kind": "no_terminator", "hold_s": -1}, '"hold_s" must be >= 0'),
    ],
)
def test_invalid_faults_say_what_is_wrong(data: Any, message: str) -> None:
    with pytest.raises(FaultError) as info:
        parse_fault(data, "f1")
    assert message in str(info.value)


def test_every_kind_parses_with_its_defaults() -> None:
    required = {
        "status": {"status": 500},
        "slow_first_token": {"delay_s": 1},
        "flap": {"down_s": 1},
    }
    for kind in KINDS:
        fault = parse_fault({"model": "*", "kind": kind, **required.get(kind, {})}, "f1")
        assert fault.count is None
        assert fault.plan().outcome == kind
    assert parse_fault({"model": "m", "kind": "cut"}, "f").params == {"after_tokens": 3}
    assert parse_fault({"model": "m", "kind": "flap", "down_s": 2}, "f").params["status"] == 503


def test_to_json_round_trips_the_definition() -> None:
    fault = parse_fault(
        {"model": "m", "kind": "status", "status": 429, "retry_after": 3, "code": "x", "count": 2},
        "f9",
    )
    data = fault.to_json()
    assert data["id"] == "f9"
    assert {k: data[k] for k in ("model", "kind", "status", "retry_after", "code", "count")} == {
        "model": "m",
        "kind": "status",
        "status": 429,
        "retry_after": 3,
        "code": "x",
        "count": 2,
    }


def test_count_is_used_up_then_the_fault_is_gone() -> None:
    registry = FaultRegistry()
    registry.add({"model": "m", "kind": "reset", "count": 2})
    assert [registry.take("m", stream=True).drop for _ in range(3)] == ["reset", "reset", None]
    assert registry.list() == []


def test_take_matches_the_model_or_star_and_skips_others() -> None:
    registry = FaultRegistry()
    registry.add({"model": "a", "kind": "hang"})
    assert registry.take("b", stream=True).outcome == "ok"
    assert registry.take("a", stream=False).outcome == "hang"
    registry.add({"model": "*", "kind": "reset"})
    assert registry.take("b", stream=True).outcome == "reset"


def test_flap_expires_after_down_s() -> None:
    clock = FakeClock()
    registry = FaultRegistry(clock)
    registry.add({"model": "m", "kind": "flap", "down_s": 0.05, "status": 500})
    plan = registry.take("m", stream=True)
    assert (plan.outcome, plan.status) == ("flap", 500)
    clock.advance(0.06)
    assert registry.take("m", stream=True).outcome == "ok"
    assert registry.list() == []


def test_flap_is_down_until_down_s_from_when_it_was_set() -> None:
    clock = FakeClock()
    registry = FaultRegistry(clock)
    clock.advance(100)  # time before the fault was set does not count against it
    registry.add({"model": "m", "kind": "flap", "down_s": 2})
    clock.advance(1.999)
    assert registry.take("m", stream=False).status == 503
    assert len(registry.list()) == 1
    clock.advance(0.001)
    assert registry.list() == []
    assert registry.take("m", stream=False).outcome == "ok"


def test_the_default_clock_is_monotonic_time() -> None:
    registry = FaultRegistry()
    registry.add({"model": "a", "kind": "flap", "down_s": 0})
    registry.add({"model": "b", "kind": "flap", "down_s": 3600})
    assert registry.take("a", stream=True).outcome == "ok"  # healed at once
    assert registry.take("b", stream=True).outcome == "flap"  # down for the hour


def test_remove_and_clear() -> None:
    registry = FaultRegistry()
    a = registry.add({"model": "m", "kind": "reset"})
    b = registry.add({"model": "m", "kind": "hang"})
    assert a.id != b.id
    assert registry.remove(a.id)
    assert not registry.remove(a.id)
    assert [f.id for f in registry.list()] == [b.id]
    registry.clear()
    assert registry.list() == []


def test_ids_are_not_used_up_by_invalid_faults() -> None:
    registry = FaultRegistry()
    with pytest.raises(FaultError):
        registry.add({"model": "m", "kind": "explode"})
    assert registry.add({"model": "m", "kind": "reset"}).id == "f1"


def test_probability_seed_and_hold_s_have_upper_bounds() -> None:
    with pytest.raises(FaultOutOfBounds, match=r'"probability" must be <= 1'):
        parse_fault({"model": "m", "kind": "reset", "probability": 1.5}, "")
    with pytest.raises(FaultOutOfBounds, match=r'"seed" must be <= 18446744073709551615'):
        parse_fault({"model": "m", "kind": "reset", "probability": 0.5, "seed": MAX_SEED + 1}, "")
    with pytest.raises(FaultOutOfBounds, match='"hold_s" must be <= 600'):
        parse_fault({"model": "m", "kind": "no_terminator", "hold_s": MAX_DELAY_S + 1}, "")


def _hits(registry: FaultRegistry, requests: int) -> list[bool]:
    return [registry.take("m", stream=True).outcome != "ok" for _ in range(requests)]


def test_a_seeded_probability_hits_the_same_share_of_requests_every_time() -> None:
    runs = []
    for _ in range(2):
        registry = FaultRegistry()
        registry.add({"model": "m", "kind": "reset", "probability": 0.05, "seed": 42})
        runs.append(_hits(registry, 2000))
    assert runs[0] == runs[1]
    assert 60 <= sum(runs[0]) <= 140  # 5 % of 2000, give or take what one seed draws
    (fault,) = registry.list()
    assert fault.hits == sum(runs[0])
    other = FaultRegistry()
    other.add({"model": "m", "kind": "reset", "probability": 0.05, "seed": 43})
    assert _hits(other, 2000) != runs[0]


def test_probability_edges_and_a_count_used_up_only_by_hits() -> None:
    registry = FaultRegistry()
    registry.add({"model": "m", "kind": "reset", "probability": 0})
    assert _hits(registry, 50) == [False] * 50
    registry.clear()
    registry.add({"model": "m", "kind": "reset", "probability": 1, "seed": 1})
    assert _hits(registry, 5) == [True] * 5
    registry.clear()
    registry.add({"model": "m", "kind": "reset", "probability": 0.5, "seed": 7, "count": 3})
    assert sum(_hits(registry, 100)) == 3
    assert registry.list() == []


def test_a_miss_leaves_the_request_to_the_next_matching_fault() -> None:
    registry = FaultRegistry()
    registry.add({"model": "m", "kind": "reset", "probability": 0.5, "seed": 5})
    registry.add({"model": "*", "kind": "hang"})
    outcomes = {registry.take("m", stream=True).outcome for _ in range(40)}
    assert outcomes == {"reset", "hang"}


def test_probability_and_seed_are_shown_with_the_fault() -> None:
    fault = parse_fault({"model": "m", "kind": "reset", "probability": 0.25, "seed": 9}, "f1")
    assert (fault.to_json()["probability"], fault.to_json()["seed"]) == (0.25, 9)
    assert "probability" not in parse_fault({"model": "m", "kind": "reset"}, "f2").to_json()
