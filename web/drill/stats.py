"""The figures of a drill's turns, and the checks they are held to.

Percentiles are nearest-rank (the smallest value with at least p % of the turns at or below
it): with the few turns of a drill, p95 is then a turn that really happened, usually the worst.

The checks compare what each user saw with every ending the policy allows
(:meth:`web.drill.expect.Expectation.accepted`): the tier that answered, the badge and its
tooltip, the sentence (or, for a turn no tier could answer, the error), the queued state on the
way; then the p95 waits against the bound, and the user-visible errors. A check that fails keeps
a few of its mismatches, seen against expected, for the report.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from web.status import ReplyState

from .expect import Expectation, Shown
from .user_path import Observation

EXAMPLES = 3
"""Mismatches a failed check keeps for the report."""


def percentile(values: Sequence[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return round(ordered[rank - 1], 3)


@dataclass(frozen=True)
class TierFigures:
    tier: str
    turns: int
    ttft_p50_s: float | None
    ttft_p95_s: float | None
    total_p50_s: float | None
    total_p95_s: float | None


def per_tier(observations: Sequence[Observation]) -> list[TierFigures]:
    """Per answering tier (``""``: no tier answered), in order of first appearance."""
    groups: dict[str, list[Observation]] = {}
    for seen in observations:
        tier = seen.final.tier if seen.final is not None else ""
        groups.setdefault(tier, []).append(seen)
    figures = []
    for tier, group in groups.items():
        ttft = [s.ttft_s for s in group if s.ttft_s is not None]
        total = [s.total_s for s in group if s.total_s is not None]
        figures.append(
            TierFigures(
                tier,
                len(group),
                percentile(ttft, 50),
                percentile(ttft, 95),
                percentile(total, 50),
                percentile(total, 95),
            )
        )
    return figures


@dataclass
class Check:
    name: str
    expected: str
    passed: bool = True
    seen: str = ""
    mismatches: list[str] = field(default_factory=list)

    def miss(self, what: str) -> None:
        self.passed = False
        if len(self.mismatches) < EXAMPLES:
            self.mismatches.append(what)


def is_error(seen: Observation) -> bool:
    """The user met an error: no reply at all, or a reply that failed or was cut short."""
    if seen.problem is not None or seen.final is None:
        return True
    return seen.final.state in (ReplyState.FAILED, ReplyState.STOPPED)


def unexpected_errors(
    observations: Sequence[Observation], expectation: Expectation, accepted: frozenset[Shown]
) -> int:
    """Errors the hypothesis did not foresee (the clear error of all-down without a queue is
    foreseen, when it says what it should)."""
    return sum(
        1
        for seen in observations
        if is_error(seen) and not (seen.final is not None and seen.final in accepted)
    )


def minutes_of(start: float, end: float) -> list[float]:
    """One Unix time in each minute from ``start`` to ``end`` (what "10:42 UTC" can name)."""
    first, last = math.floor(start / 60) * 60, math.floor(end / 60) * 60
    return [float(t) for t in range(int(first), int(last) + 60, 60)]


def checks(
    observations: Sequence[Observation],
    expectation: Expectation,
    *,
    minutes: Sequence[float],
    max_wait_s: float,
) -> list[Check]:
    accepted = expectation.accepted(minutes, max_wait_s)
    headline = expectation.expected(at=minutes[0] if minutes else 0.0)
    tier = Check("answering tier", headline.tier or "none (no tier can answer)")
    badge = Check("badge", _badge_words(headline))
    sentence = Check("sentence", _sentence(headline))
    if expectation.queues:
        sentence.expected += " (the minute it was queued and its wait vary)"
    found = []
    for seen in observations:
        final = seen.final
        if final is None:
            continue
        found.append(final.tier or "none")
        same = [a for a in accepted if (a.tier, a.state) == (final.tier, final.state)]
        if not same:
            tier.miss(f"turn {_turn(seen)}: {final.tier or 'none'} ({final.state.value})")
            same = list(accepted)
        if (final.badge, final.title) not in {(a.badge, a.title) for a in same}:
            badge.miss(f"turn {_turn(seen)}: {_badge_words(final)}")
        if (final.reason, final.error) not in {(a.reason, a.error) for a in same}:
            sentence.miss(f"turn {_turn(seen)}: {_sentence(final)}")
    counts = Counter(found)
    tier.seen = ", ".join(f"{name}: {n}" for name, n in counts.items()) or "no reply ended"
    if not found:
        tier.miss("no reply ended")
    badge.seen = "as expected" if badge.passed else f"{len(badge.mismatches)}+ differ"
    sentence.seen = "as expected" if sentence.passed else f"{len(sentence.mismatches)}+ differ"
    result = [tier, badge, sentence]
    queued = expectation.expected_queued()
    if queued is not None:
        result.append(_queued_check(observations, expectation, queued, minutes))
    result.extend(_sla_checks(observations, expectation))
    errors = unexpected_errors(observations, expectation, accepted)
    problem = Check("user-visible errors", "none unforeseen", passed=errors == 0)
    problem.seen = f"{errors} unforeseen, {sum(map(is_error, observations))} in all"
    for seen in observations:
        if is_error(seen) and not (seen.final is not None and seen.final in accepted):
            problem.miss(f"turn {_turn(seen)}: {_what_went_wrong(seen)}")
    problem.passed = errors == 0
    result.append(problem)
    return result


def _queued_check(
    observations: Sequence[Observation],
    expectation: Expectation,
    queued: Shown,
    minutes: Sequence[float],
) -> Check:
    check = Check("queued first", f"{_badge_words(queued)}, “{queued.reason}”")
    allowed = expectation.accepted_queued(minutes)
    times = []
    for seen in observations:
        if seen.queued is None:
            check.miss(f"turn {_turn(seen)}: never queued")
        elif seen.queued not in allowed:
            check.miss(f"turn {_turn(seen)}: {_badge_words(seen.queued)}, {_sentence(seen.queued)}")
        if seen.queued_s is not None:
            times.append(seen.queued_s)
    p95 = percentile(times, 95)
    check.seen = f"{len(times)} landed, p95 {p95:.1f} s in the queue" if p95 else "none landed"
    return check


def _sla_checks(observations: Sequence[Observation], expectation: Expectation) -> list[Check]:
    bound = expectation.bound
    if bound is None:
        return []
    mine = [s for s in observations if s.final is not None and s.final.tier == bound.tier.name]
    result = []
    for name, limit, values in (
        ("first token p95", bound.ttft_s, [s.ttft_s for s in mine if s.ttft_s is not None]),
        ("whole reply p95", bound.total_s, [s.total_s for s in mine if s.total_s is not None]),
    ):
        p95 = percentile(values, 95)
        check = Check(f"{name} ({bound.tier.name})", f"under {limit:g} s")
        check.seen = f"{p95:.2f} s over {len(values)} turns" if p95 is not None else "no turns"
        if p95 is None or p95 > limit:
            check.miss(f"p95 {p95:.2f} s > {limit:g} s" if p95 is not None else "no turns")
        result.append(check)
    return result


def abort_reason(
    observations: Sequence[Observation],
    expectation: Expectation,
    *,
    max_errors: int,
    minutes: Sequence[float],
) -> str | None:
    """Why the drill should stop now: more unforeseen errors than ``max_errors``, or a p95 wait
    past twice its bound."""
    accepted = expectation.accepted(minutes, 0.0)
    errors = unexpected_errors(observations, expectation, accepted)
    if errors > max_errors:
        return f"{errors} unforeseen user-visible errors (more than --max-errors {max_errors})"
    bound = expectation.bound
    if bound is None:
        return None
    for name, limit, values in (
        ("first token", bound.ttft_s, [s.ttft_s for s in observations if s.ttft_s is not None]),
        ("whole reply", bound.total_s, [s.total_s for s in observations if s.total_s is not None]),
    ):
        p95 = percentile(values, 95)
        if p95 is not None and p95 > 2 * limit:
            return f"p95 {name} {p95:.1f} s, past twice its {limit:g} s bound"
    return None


def _turn(seen: Observation) -> str:
    return f"{seen.prompt + 1}" + (f" ({seen.turn_id})" if seen.turn_id else "")


def _badge_words(shown: Shown) -> str:
    if shown.badge is None:
        return "no badge"
    return f"`{shown.badge}` (“{shown.title}”)"


def _sentence(shown: Shown) -> str:
    if shown.error is not None:
        return f"error “{shown.error}”"
    return f"“{shown.reason}”" if shown.reason is not None else "no sentence"


def _what_went_wrong(seen: Observation) -> str:
    if seen.problem is not None:
        return seen.problem
    assert seen.final is not None
    return f"{seen.final.state.value}: {seen.final.error or 'no reply'}"
