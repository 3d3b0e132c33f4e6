"""One drill, from its start to its verdict; and the quarterly set, one drill after another.

1. Log in to the target's admin API, read which tiers it runs (its admin page's line-up) and take
   their settings (labels, badges, timeouts, SLA) from the chain file.
2. Work out what the scenario's faults should make users see (web.drill.expect), and say it as
   the hypothesis.
3. Start the drill through the API, then send the prompts as new visitors would
   (web.drill.user_path), ``concurrency`` at a time, each with the drill's header.
4. Abort conditions, after every reply: more unforeseen user-visible errors than
   ``max_errors``, or a p95 wait past twice its bound. An abort stops sending at once.
5. Always end the drill through the API, which removes its faults: in a ``finally``, so an
   abort, an error, Ctrl-C (asyncio cancels the drill's task) and SIGTERM (made to do the same)
   all restore. Should even that call fail, the server stops the faults at the drill's expiry.
6. Then the recovery check: the primary must answer an ordinary message again within a bound.

The results are handed over as they are made, so an interrupted run still has its report.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from web.deferral import Deferral
from web.drills import CACHE_S, MAX_TTL_S
from web.settings import Settings, TierConfig, load_chain_file
from web.status import ReplyState

from .admin_api import AdminAPI, DrillUnavailable, LineUp
from .expect import Expectation, expect
from .recovery import check_recovery
from .report import DrillResult, to_json, to_markdown
from .scenarios import Scenario, hypothesis, scenarios_for
from .stats import abort_reason, checks, minutes_of, per_tier
from .user_path import Observation, UserPath

TURN_MARGIN_S = 30.0
"""Past the turn deadline, how long a reply may take to reach the user before it counts as lost."""
INTERRUPTED = "interrupted (Ctrl-C or SIGTERM); the drill was ended early"
TTL_MARGIN_S = 600.0

Say = Callable[[str], None]


@dataclass(frozen=True)
class DrillOptions:
    scenario: str
    prompts: int = 10
    prompt_file: Path | None = None
    concurrency: int = 2
    instance_wide: bool = False
    ttft_p95_s: float | None = None
    total_p95_s: float | None = None
    max_errors: int = 3
    queue_timeout_s: float = 300.0
    recovery_timeout_s: float = 90.0


@dataclass(frozen=True)
class Target:
    url: str
    password: str
    in_process: bool


@dataclass(frozen=True)
class Chain:
    """What the target runs, with the chain file's settings for it."""

    tiers: tuple[TierConfig, ...]
    deferral: Deferral | None
    lineup: LineUp


async def run(
    settings: Settings,
    target: Target,
    options: DrillOptions,
    prompts: Sequence[str],
    results: list[DrillResult],
    say: Say,
) -> None:
    """Run the scenario (or the quarterly set), appending each drill's result to ``results``
    as soon as it starts. Stops the set after a drill that aborted or could not run."""
    api = AdminAPI(target.url, target.password)
    with _sigterm_cancels():
        try:
            scenarios = scenarios_for(options.scenario)
            try:
                await api.login()
                chain = await _chain(api, settings)
            except DrillUnavailable as exc:
                results.append(_unable(scenarios[0], target, options, prompts, str(exc)))
                return
            for scenario in scenarios:
                result = await _drill(
                    scenario, chain, api, settings, target, options, prompts, results, say
                )
                if result.aborted or result.problem:
                    return
        finally:
            await api.aclose()


async def _chain(api: AdminAPI, settings: Settings) -> Chain:
    lineup = await api.lineup()
    configs, deferral_config = load_chain_file(settings.chain_file)
    by_name = {t.name: t for t in configs}
    missing = [name for name in lineup.tiers if name not in by_name]
    if missing or not lineup.tiers:
        raise DrillUnavailable(
            f"the target runs tier(s) {', '.join(missing) or '(none listed)'} that "
            f"{settings.chain_file} does not have: point UNDERSTUDY_CHAIN at the target's chain "
            "file, so the drill knows what its tiers should show."
        )
    tiers = tuple(by_name[name] for name in lineup.tiers)
    deferral = None
    if lineup.queues:
        if deferral_config is None:
            raise DrillUnavailable(
                f"the target queues what no tier can answer, but {settings.chain_file} has no "
                "[deferral] table: point UNDERSTUDY_CHAIN at the target's chain file."
            )
        deferral = Deferral.from_settings(replace(settings, tiers=tiers, deferral=deferral_config))
    return Chain(tiers, deferral, lineup)


def _unable(
    scenario: Scenario, target: Target, options: DrillOptions, prompts: Sequence[str], why: str
) -> DrillResult:
    now = time.time()
    return DrillResult(
        scenario=scenario.name,
        summary=scenario.summary,
        hypothesis="(not stated: the drill could not run)",
        target=target.url,
        in_process=target.in_process,
        upstream="unknown",
        instance_wide=options.instance_wide,
        faults=(),
        prompts=len(prompts),
        concurrency=options.concurrency,
        sla="-",
        started_at=now,
        ended_at=now,
        problem=why,
    )


def _sla_words(expectation: Expectation) -> str:
    bound = expectation.bound
    if bound is None:
        return "none: no tier can answer (the queue and the error are checked instead)"
    sla = bound.sla.sla
    return (
        f"{bound.tier.label}: p95 first token {sla.ttft_p95_s:g} s, whole reply "
        f"{sla.total_p95_s:g} s ({bound.sla.source}); with what the failed tiers cost, "
        f"{bound.ttft_s:g} s and {bound.total_s:g} s"
    )


async def _drill(
    scenario: Scenario,
    chain: Chain,
    api: AdminAPI,
    settings: Settings,
    target: Target,
    options: DrillOptions,
    prompts: Sequence[str],
    results: list[DrillResult],
    say: Say,
) -> DrillResult:
    tiers = chain.tiers
    try:
        faults = scenario.faults(tiers)
    except ValueError as exc:
        result = _unable(scenario, target, options, prompts, str(exc))
        results.append(result)
        return result
    expectation = expect(
        tiers,
        faults,
        deferral=chain.deferral,
        deadline_s=settings.turn_deadline_s,
        instance_wide=options.instance_wide,
        ttft_p95_s=options.ttft_p95_s,
        total_p95_s=options.total_p95_s,
    )
    turn_timeout_s = settings.turn_deadline_s + TURN_MARGIN_S
    now = time.time()
    result = DrillResult(
        scenario=scenario.name,
        summary=scenario.summary,
        hypothesis=hypothesis(
            scenario, tiers, expectation, queue_timeout_s=options.queue_timeout_s
        ),
        target=target.url,
        in_process=target.in_process,
        upstream="simulator" if chain.lineup.simulated else "real providers",
        instance_wide=options.instance_wide,
        faults=faults,
        prompts=len(prompts),
        concurrency=options.concurrency,
        sla=_sla_words(expectation),
        started_at=now,
        ended_at=now,
    )
    results.append(result)
    rounds = math.ceil(len(prompts) / max(1, options.concurrency))
    ttl_s = rounds * (turn_timeout_s + options.queue_timeout_s) + TTL_MARGIN_S
    starting = asyncio.ensure_future(
        api.start(
            scenario.name, faults, instance_wide=options.instance_wide, ttl_s=min(ttl_s, MAX_TTL_S)
        )
    )
    try:
        started = await asyncio.shield(starting)
    except DrillUnavailable as exc:
        result.problem = str(exc)
        return result
    except asyncio.CancelledError:
        # Interrupted while the server may have started it: end it before giving up.
        result.aborted = INTERRUPTED
        with contextlib.suppress(Exception):
            result.drill_id = (await starting).id
            await _end(api, result, say)
        raise
    result.drill_id = started.id
    say(f"drill {scenario.name} ({started.id}) started on {target.url}")
    say(f"  hypothesis: {result.hypothesis}")
    path = UserPath(
        target.url,
        headers={started.header: started.id},
        turn_timeout_s=turn_timeout_s,
        queue_timeout_s=options.queue_timeout_s,
    )
    max_wait_s = turn_timeout_s + options.queue_timeout_s
    try:  # from here on, whatever happens, the drill is ended (its faults removed)
        if not target.in_process:
            # Each process of the target reads the running drill at most this often: until then,
            # a turn served by another process would not be one of the drill's. (The app in this
            # process is one process, and starting the drill made it read it again.)
            await asyncio.sleep(CACHE_S)
        result.aborted = await _drive(path, prompts, expectation, result, options, max_wait_s, say)
    except BaseException:
        result.aborted = result.aborted or INTERRUPTED
        raise
    finally:
        result.ended_at = time.time()
        minutes = minutes_of(result.started_at, result.ended_at)
        result.figures = per_tier(result.observations)
        result.checks = checks(
            result.observations, expectation, minutes=minutes, max_wait_s=max_wait_s
        )
        result.recovery_pending = True
        await _end(api, result, say)
    result.recovery_pending = False
    result.recovery = await check_recovery(
        target.url,
        tiers[0],
        options.recovery_timeout_s,
        turn_timeout_s,
        say,
        headers={started.header: started.id},
    )
    with contextlib.suppress(DrillUnavailable):
        # The stored report waited for this: the drills page shows the whole verdict.
        await api.complete(started.id, result.server_verdict, to_json(result), to_markdown(result))
    say(f"  verdict: {result.verdict}" + "".join(f"\n    - {r}" for r in result.reasons))
    return result


async def _drive(
    path: UserPath,
    prompts: Sequence[str],
    expectation: Expectation,
    result: DrillResult,
    options: DrillOptions,
    max_wait_s: float,
    say: Say,
) -> str | None:
    """Send every prompt, ``concurrency`` at a time; the abort reason if it stopped early."""
    todo = list(enumerate(prompts))
    aborted: list[str] = []
    workers: list[asyncio.Task[None]] = []

    async def worker() -> None:
        while todo and not aborted:
            index, prompt = todo.pop(0)
            seen = await path.send(index, prompt)
            result.observations.append(seen)
            minutes = minutes_of(result.started_at, time.time())
            allowed = seen.final in expectation.accepted(minutes, max_wait_s)
            say(_turn_line(seen, len(prompts), allowed))
            why = abort_reason(
                result.observations, expectation, max_errors=options.max_errors, minutes=minutes
            )
            if why is not None and not aborted:
                aborted.append(why)
                say(f"  aborting: {why}")
                for other in workers:
                    if other is not asyncio.current_task():
                        other.cancel()  # an abort stops sending at once

    workers.extend(asyncio.create_task(worker()) for _ in range(max(1, options.concurrency)))
    try:
        outcomes = await asyncio.gather(*workers, return_exceptions=True)
    finally:
        for task in workers:
            task.cancel()
    for outcome in outcomes:
        if isinstance(outcome, Exception):
            raise outcome
    return aborted[0] if aborted else None


def _turn_line(seen: Observation, count: int, allowed: bool) -> str:
    final = seen.final
    if final is None:
        what = f"no reply: {seen.problem}"
    elif final.state is ReplyState.FAILED:
        what = f"failed: {final.error}"
    else:
        what = final.tier + (f" via queue {seen.queued_s:.1f} s" if seen.queued_s else "")
    times = ""
    if seen.ttft_s is not None and seen.total_s is not None:
        times = f", first token {seen.ttft_s:.2f} s, {seen.total_s:.2f} s in all"
    verdict = "as expected" if allowed else "NOT as expected"
    return f"  [{seen.prompt + 1}/{count}] {what}{times}: {verdict}"


async def _end(api: AdminAPI, result: DrillResult, say: Say) -> None:
    assert result.drill_id is not None
    ending = asyncio.ensure_future(
        api.end(result.drill_id, result.server_verdict, to_json(result), to_markdown(result))
    )
    try:
        try:
            await asyncio.shield(ending)
        except asyncio.CancelledError:
            await ending  # Ctrl-C while ending: the restore finishes first
            raise
    except DrillUnavailable as exc:
        result.problem = result.problem or f"ending the drill failed: {exc}"
        say(f"  could not end drill {result.drill_id} ({exc}); its faults stop at its expiry")
        return
    say(f"  drill {result.drill_id} ended: its faults no longer apply")


@contextlib.contextmanager
def _sigterm_cancels() -> Iterator[None]:
    """SIGTERM ends the drill like Ctrl-C does (asyncio.run turns SIGINT into a cancellation
    of the main task; this makes SIGTERM do the same), so a service manager's stop restores."""
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGTERM, task.cancel if task else lambda: None)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or Windows
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
