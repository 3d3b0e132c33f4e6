"""What the chain's policy makes of a scenario's faults: who answers, and what users read.

The walk follows the policy of :mod:`web.chain` over the running tiers, in order: a faulted tier
fails with the error its fault causes (``revoked_key`` a 401, which rules out every tier that
shares its key; ``hang`` a first-token timeout, which costs the user that timeout), the first
tier left unharmed answers, and when none does, :mod:`web.deferral` decides between the queue and
the clear error. The sentences are then built with the product's own functions
(:mod:`web.wording`, :func:`web.views.badge_of`), from attempt records like the chain's, so a
drill compares the page with the words the app means to show, never with a copy of them.

One walk is the headline (every faulted tier fails as its fault says). Others are accepted too
where the policy allows them: with an instance-wide drill a tier's breaker may open, and the
tier is then skipped ("has been unavailable since 10:42 UTC"); a tier with ``hedge_after_s``
may lose a hedge instead of timing out ("was slow to answer").
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import Enum

from web.deferral import DEFERRAL_TIER, Deferral, unavailable_labels
from web.drill_faults import DrillFault, FaultKind
from web.events import AttemptRecord, TierInfo, tier_infos
from web.providers.base import ErrorKind
from web.settings import TierConfig
from web.sla_config import DEFAULT_SLA, SLA
from web.status import AttemptOutcome, HedgeRole, ReplyState
from web.views import QUEUED_BADGE, badge_of
from web.wording import (
    degraded_reason,
    delayed_reason,
    exhausted_message,
    generated_via,
    queued_for,
    queued_reason,
    waited,
)

ERROR_OF = {
    FaultKind.OVERLOADED: ErrorKind.OVERLOADED,
    FaultKind.RATE_LIMITED: ErrorKind.RATE_LIMITED,
    FaultKind.SERVER_ERROR: ErrorKind.SERVER_ERROR,
    FaultKind.REVOKED_KEY: ErrorKind.AUTH,
    FaultKind.HANG: ErrorKind.TIMEOUT,
    FaultKind.SLOW: ErrorKind.TIMEOUT,  # only when later than the first-token timeout
    FaultKind.CUT: ErrorKind.CONNECTION,
}
"""The error kind each fault makes the chain record (web.drill_faults: a cut is a broken
connection after the text so far)."""


@dataclass(frozen=True)
class Shown:
    """A reply as the user sees it once it has ended (or while it is queued): the reply's
    ``data-tier`` and ``data-state``, the badge's text and tooltip, the sentence beside the badge,
    the error under a failed reply."""

    tier: str
    state: ReplyState
    badge: str | None = None
    title: str | None = None
    reason: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class SLASource:
    sla: SLA
    source: str
    """Where it comes from: "chain file", "defaults (no sla in the chain file)" or "flags"."""


def sla_of(tier: TierConfig, ttft_p95_s: float | None, total_p95_s: float | None) -> SLASource:
    """The tier's SLA: the chain file's, else the defaults; flags override either."""
    base, source = (tier.sla, "chain file") if tier.sla else (DEFAULT_SLA, "defaults")
    if ttft_p95_s is None and total_p95_s is None:
        if source == "defaults":
            source = "defaults: no sla in the chain file"
        return SLASource(base, source)
    return SLASource(
        SLA(
            ttft_p95_s=ttft_p95_s if ttft_p95_s is not None else base.ttft_p95_s,
            total_p95_s=total_p95_s if total_p95_s is not None else base.total_p95_s,
        ),
        "flags",
    )


@dataclass(frozen=True)
class Bound:
    """How long users may wait (p95) for the answering tier, failed tiers' cost included."""

    tier: TierConfig
    sla: SLASource
    costs: tuple[tuple[str, float], ...] = ()
    """What the tiers before cost every message, and why ("Sonnet's 8 s first-token timeout")."""

    @property
    def ttft_s(self) -> float:
        return round(self.sla.sla.ttft_p95_s + sum(s for _, s in self.costs), 3)

    @property
    def total_s(self) -> float:
        return round(self.sla.sla.total_p95_s + sum(s for _, s in self.costs), 3)


class Mode(Enum):
    """How a faulted tier's try may end in one walk."""

    FAILS = "fails"
    SKIPPED = "skipped"
    """Its breaker is open (instance-wide drills only: drill turns do not feed breakers)."""
    LOSES_HEDGE = "loses_hedge"


@dataclass(frozen=True)
class Walk:
    answer: TierInfo | None
    records: tuple[AttemptRecord, ...]
    rejected_keys: frozenset[str]
    costs: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class Expectation:
    headline: Walk
    variants: tuple[Walk, ...]
    deferral: Deferral | None
    deadline_s: float
    bound: Bound | None
    """None when no tier answers now (queued, or the clear error)."""

    @property
    def queues(self) -> bool:
        return self.headline.answer is None and _queues(self.deferral, self.headline)

    def expected(self, at: float = 0.0) -> Shown:
        """The headline as it shows at the end (a delayed reply: queued at ``at``, a Unix time,
        and answered at once; the report says that those two vary)."""
        return _final(self, self.headline, [at], max_wait_s=0.0)[0]

    def expected_queued(self) -> Shown | None:
        return _queued_shown(self.deferral, self.headline) if self.queues else None

    def accepted(self, minutes: Sequence[float], max_wait_s: float) -> frozenset[Shown]:
        """Every ending the policy allows. ``minutes``: Unix times, one in each minute of the
        drill's window (a breaker's "since" and a queued reply's time show only the minute);
        ``max_wait_s``: the longest a queued reply may have waited."""
        found: set[Shown] = set()
        for walk in (self.headline, *self.variants):
            found.update(_final(self, walk, minutes, max_wait_s=max_wait_s))
        return frozenset(found)

    def accepted_queued(self, minutes: Sequence[float]) -> frozenset[Shown]:
        found: set[Shown] = set()
        for walk in (self.headline, *self.variants):
            for timed in _timed(walk, minutes):
                if timed.answer is None and _queues(self.deferral, timed):
                    found.add(_queued_shown(self.deferral, timed))
        return frozenset(found)


def expect(
    tiers: Sequence[TierConfig],
    faults: Sequence[DrillFault],
    *,
    deferral: Deferral | None,
    deadline_s: float,
    instance_wide: bool,
    ttft_p95_s: float | None = None,
    total_p95_s: float | None = None,
) -> Expectation:
    by_tier = {f.tier: f for f in faults}
    infos = tier_infos(tiers)

    def sla(tier: TierConfig) -> SLASource:
        return sla_of(tier, ttft_p95_s, total_p95_s)

    def modes(config: TierConfig, fault: DrillFault) -> list[Mode]:
        found = [Mode.FAILS]
        late = _first_token_s(fault)
        answers_late = fault.kind is FaultKind.SLOW and late < config.timeouts.first_token_s
        if instance_wide and not answers_late:
            found.append(Mode.SKIPPED)  # a failure feeds the breaker; a late success does not
        if config.hedge_after_s is not None and config.hedge_after_s < late:
            found.append(Mode.LOSES_HEDGE)
        return found

    faulted = [t for t in tiers if t.name in by_tier]
    headline = _walk(tiers, infos, by_tier, {}, sla)
    variants = []
    for choice in itertools.product(*(modes(t, by_tier[t.name]) for t in faulted)):
        chosen = {t.name: m for t, m in zip(faulted, choice, strict=True)}
        if any(m is not Mode.FAILS for m in chosen.values()):
            variants.append(_walk(tiers, infos, by_tier, chosen, sla))
    bound = None
    if headline.answer is not None:
        answering = tiers[headline.answer.index]
        bound = Bound(answering, sla(answering), headline.costs)
    return Expectation(headline, tuple(variants), deferral, deadline_s, bound)


def _walk(
    tiers: Sequence[TierConfig],
    infos: Sequence[TierInfo],
    faults: Mapping[str, DrillFault],
    modes: Mapping[str, Mode],
    sla: Callable[[TierConfig], SLASource],
) -> Walk:
    records: list[AttemptRecord] = []
    rejected: set[str] = set()
    costs: list[tuple[str, float]] = []
    for config, info in zip(tiers, infos, strict=True):
        if config.api_key_env in rejected:
            continue  # after a 401 the chain skips every tier that shares the key
        fault = faults.get(config.name)
        if fault is None:
            return Walk(info, tuple(records), frozenset(rejected), tuple(costs))
        mode = modes.get(config.name, Mode.FAILS)
        first_token_s = config.timeouts.first_token_s
        if mode is Mode.SKIPPED:
            records.append(
                _record(info, len(records), AttemptOutcome.SKIPPED, ERROR_OF[fault.kind])
            )
            continue
        if mode is Mode.LOSES_HEDGE:
            hedge_s = config.hedge_after_s or 0.0
            records.append(
                replace(
                    _record(info, len(records), AttemptOutcome.CANCELLED, None),
                    hedge=HedgeRole.HEDGED,
                )
            )
            costs.append((f"{config.label}'s {hedge_s:g} s before its hedge", hedge_s))
            continue
        if fault.kind is FaultKind.SLOW and fault.delay_s < first_token_s:
            delay = fault.delay_s
            costs.append((f"{config.label}'s {delay:g} s late first token", delay))
            return Walk(info, tuple(records), frozenset(rejected), tuple(costs))
        kind = ERROR_OF[fault.kind]
        failed = _record(info, len(records), AttemptOutcome.FAILED, kind)
        records.append(replace(failed, after_text=fault.kind is FaultKind.CUT))
        if kind is ErrorKind.AUTH:
            rejected.add(config.api_key_env)
        if kind is ErrorKind.TIMEOUT:
            costs.append(
                (f"{config.label}'s {first_token_s:g} s first-token timeout", first_token_s)
            )
        elif fault.kind is FaultKind.CUT:
            own = sla(config).sla.ttft_p95_s
            costs.append((f"{config.label}'s own first token ({own:g} s) before it broke off", own))
    return Walk(None, tuple(records), frozenset(rejected), tuple(costs))


def _first_token_s(fault: DrillFault) -> float:
    """How late the faulted tier's first token is: never (a hang), the delay, or not late."""
    if fault.kind is FaultKind.HANG:
        return float("inf")
    if fault.kind is FaultKind.SLOW:
        return fault.delay_s
    return 0.0


def _record(
    info: TierInfo, number: int, outcome: AttemptOutcome, kind: ErrorKind | None
) -> AttemptRecord:
    return AttemptRecord(
        tier=info,
        attempt=number + 1,
        started_at=0.0,
        elapsed_s=0.0,
        ttft_s=None,
        outcome=outcome,
        error_kind=kind,
    )


def _timed(walk: Walk, minutes: Sequence[float]) -> Iterable[Walk]:
    """The walk with each skipped try's "since" set to each minute of the window."""
    skipped = [i for i, r in enumerate(walk.records) if r.outcome is AttemptOutcome.SKIPPED]
    if not skipped:
        yield walk
        return
    for times in itertools.product(minutes, repeat=len(skipped)):
        records = list(walk.records)
        for index, when in zip(skipped, times, strict=True):
            records[index] = replace(records[index], open_since=when)
        yield replace(walk, records=tuple(records))


def _queues(deferral: Deferral | None, walk: Walk) -> bool:
    return deferral is not None and deferral.accepts(walk.records)


def _queued_shown(deferral: Deferral | None, walk: Walk) -> Shown:
    assert deferral is not None
    return Shown(
        tier=DEFERRAL_TIER,
        state=ReplyState.QUEUED,
        badge=QUEUED_BADGE,
        title=queued_for(deferral.info.label),
        reason=queued_reason(unavailable_labels(walk.records)),
    )


def _final(
    expectation: Expectation, walk: Walk, minutes: Sequence[float], *, max_wait_s: float
) -> list[Shown]:
    found = []
    deferral = expectation.deferral
    for timed in _timed(walk, minutes):
        answer = timed.answer
        if answer is not None:
            badge = badge_of(answer)
            title = generated_via(answer.label) if badge is not None else None
            reason = degraded_reason(answer, timed.records)
            found.append(Shown(answer.name, ReplyState.DONE, badge, title, reason))
        elif deferral is not None and _queues(deferral, timed):
            info = deferral.info
            unavailable = unavailable_labels(timed.records)
            for queued_at in minutes:
                for wait in _waits(max_wait_s):
                    reason = delayed_reason(
                        queued_at=queued_at, unavailable=unavailable, via=info.label, waited_s=wait
                    )
                    found.append(
                        Shown(
                            DEFERRAL_TIER,
                            ReplyState.DONE,
                            badge_of(info),
                            generated_via(info.label),
                            reason,
                        )
                    )
        else:
            error = exhausted_message(
                timed.records,
                deadline_s=expectation.deadline_s,
                out_of_time=False,
                rejected_keys=timed.rejected_keys,
            )
            found.append(Shown("", ReplyState.FAILED, error=error))
    return found


def _waits(max_wait_s: float) -> list[float]:
    """One wait for each way :func:`web.wording.waited` can say a wait up to ``max_wait_s``."""
    seen: dict[str, float] = {}
    second = 0.0
    while second <= max_wait_s + 60:
        seen.setdefault(waited(second), second)
        second += 0.5 if second < 90 else 30.0
    return list(seen.values())
