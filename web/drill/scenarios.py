"""The standard drill scenarios, declared: which tiers a fault hits, and of what kind.

A scenario only says what goes wrong. What users should then see (who answers, the badge, the
sentence, how long they wait) follows from the chain and its policy, and is worked out by
:mod:`web.drill.expect`; the hypothesis the report states is built from both.

The faults are the server's own (web.drill_faults): the tier fails at once with an
error kind (``overloaded``, ``rate_limited``, ``server_error``: simulated in the app, whatever
the provider), its provider gets an invalid key (``revoked_key``: the provider itself, real or
simulated, answers 401), it never sends a first token (``hang``), sends it late (``slow``) or
breaks off mid-reply (``cut``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from web.drill_faults import DrillFault, FaultKind
from web.settings import TierConfig

if TYPE_CHECKING:  # the command's --help lists the scenarios without loading the app's views
    from .expect import Expectation

QUARTERLY = "quarterly"
"""The standard set, in order (each its own drill, each with its recovery check)."""
SLOW_SHARE = 0.5
"""primary-slow delays the first token by this share of the primary's first-token timeout: late
enough to be felt, early enough that the chain must wait for it rather than move on."""
CUT_AFTER_TOKENS = 5


def in_app(fault: DrillFault) -> bool:
    """The app makes the tier fail; only a revoked key is refused by the provider itself."""
    return fault.kind is not FaultKind.REVOKED_KEY


Hits = Callable[[Sequence[TierConfig]], list[TierConfig]]
"""Which of the running tiers (in chain order, the primary first) a scenario's fault hits."""


def primary(tiers: Sequence[TierConfig]) -> list[TierConfig]:
    return [tiers[0]]


def primary_key(tiers: Sequence[TierConfig]) -> list[TierConfig]:
    """A revoked key is revoked for every tier that uses it, not just for the primary."""
    return [t for t in tiers if t.api_key_env == tiers[0].api_key_env]


def anthropic(tiers: Sequence[TierConfig]) -> list[TierConfig]:
    return [t for t in tiers if t.provider == "anthropic"]


def every(tiers: Sequence[TierConfig]) -> list[TierConfig]:
    return list(tiers)


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: FaultKind
    hits: Hits
    summary: str
    """One line for --help and the report."""

    def faults(self, tiers: Sequence[TierConfig]) -> tuple[DrillFault, ...]:
        hit = self.hits(tiers)
        if not hit:
            raise ValueError(f"scenario {self.name}: no running tier is hit ({self.summary})")
        return tuple(self.fault_for(t) for t in hit)

    def fault_for(self, tier: TierConfig) -> DrillFault:
        if self.kind is FaultKind.SLOW:
            delay = round(tier.timeouts.first_token_s * SLOW_SHARE, 3)
            return DrillFault(tier.name, self.kind, delay_s=delay)
        if self.kind is FaultKind.CUT:
            return DrillFault(tier.name, self.kind, after_tokens=CUT_AFTER_TOKENS)
        return DrillFault(tier.name, self.kind)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "primary-key-revoked",
        FaultKind.REVOKED_KEY,
        primary_key,
        "the primary's key replaced by an invalid one (the provider itself answers 401)",
    ),
    Scenario("primary-down", FaultKind.OVERLOADED, primary, "the primary overloaded"),
    Scenario("primary-hang", FaultKind.HANG, primary, "the primary never sends a first token"),
    Scenario("primary-slow", FaultKind.SLOW, primary, "the primary's first token comes late"),
    Scenario("primary-cut", FaultKind.CUT, primary, "the primary's reply breaks off mid-way"),
    Scenario(
        "anthropic-down",
        FaultKind.OVERLOADED,
        anthropic,
        "every Anthropic tier overloaded: the cross-provider path",
    ),
    Scenario(
        "all-down",
        FaultKind.OVERLOADED,
        every,
        "every tier overloaded: the queue, or the clear error where there is none",
    ),
)
BY_NAME = {s.name: s for s in SCENARIOS}
NAMES = (*BY_NAME, QUARTERLY)


def scenarios_for(name: str) -> tuple[Scenario, ...]:
    """The scenarios a --scenario runs: one, or the standard set in order."""
    if name == QUARTERLY:
        return SCENARIOS
    try:
        return (BY_NAME[name],)
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; choose one of {', '.join(NAMES)}") from None


def labels(tiers: Sequence[TierConfig]) -> str:
    """ "Sonnet", "Sonnet and Haiku", "Sonnet, Haiku and GPT-5.5"."""
    names = [t.label for t in tiers]
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} and {names[-1]}"


def possessive(tiers: Sequence[TierConfig]) -> str:
    return f"{labels(tiers)}'s" if len(tiers) == 1 else f"each of {labels(tiers)}'s"


def condition(scenario: Scenario, tiers: Sequence[TierConfig]) -> str:
    """The hypothesis's opening: what is broken ("With Sonnet overloaded")."""
    hit = scenario.hits(tiers)
    fault = scenario.fault_for(hit[0])
    match scenario.kind:
        case FaultKind.REVOKED_KEY:
            return (
                f"With {hit[0].api_key_env} revoked for {labels(hit)} (the provider itself "
                "answers 401)"
            )
        case FaultKind.HANG:
            return f"With {labels(hit)} hanging (no first token, ever)"
        case FaultKind.SLOW:
            return f"With {possessive(hit)} first token {fault.delay_s:g} s late"
        case FaultKind.CUT:
            return f"With {possessive(hit)} reply cut after {fault.after_tokens} tokens"
        case _:
            return f"With {labels(hit)} {_FAILING[scenario.kind]}"


_FAILING = {
    FaultKind.OVERLOADED: "overloaded",
    FaultKind.RATE_LIMITED: "rate limited",
    FaultKind.SERVER_ERROR: "failing with server errors",
}


def hypothesis(
    scenario: Scenario,
    tiers: Sequence[TierConfig],
    expectation: Expectation,
    *,
    queue_timeout_s: float,
) -> str:
    """The hypothesis the report states, with its numbers: who answers, how fast, what users
    read ("With Sonnet overloaded, Haiku answers every message: p95 first token under 3 s ...")."""
    opening = condition(scenario, tiers)
    shown = expectation.expected()
    bound = expectation.bound
    if bound is not None:
        restart = " from the start" if scenario.kind is FaultKind.CUT else ""
        still = " still" if bound.tier is tiers[0] else ""
        wait = f"p95 first token under {bound.ttft_s:g} s"
        if bound.costs:
            costs = " plus ".join(why for why, _ in bound.costs)
            wait += f" ({costs}, then {bound.tier.label}'s own {bound.sla.sla.ttft_p95_s:g} s)"
        words = (
            f"every reply wears `{shown.badge}` (“{shown.title}”) and says “{shown.reason}”"
            if shown.badge is not None
            else "no reply wears a badge"
        )
        text = (
            f"{opening}, {bound.tier.label}{still} answers every message{restart}: {wait} and "
            f"the whole reply under {bound.total_s:g} s; {words}."
        )
    elif (queued := expectation.expected_queued()) is not None:
        text = (
            f"{opening}, no tier can answer now and every message is queued (`{queued.badge}`, "
            f"“{queued.reason}”), then lands within {queue_timeout_s:g} s as a `{shown.badge}` "
            f"(“{shown.title}”) with the sentence saying when it was queued and why."
        )
    else:
        text = (
            f"{opening}, no tier can answer and there is no queue: every message fails with no "
            f"badge and the clear error “{shown.error}”."
        )
    if expectation.variants:
        text += (
            " Also accepted where the policy allows it: a tier skipped once its breaker is open "
            "(instance-wide drills), or one that lost a hedge."
        )
    return text
