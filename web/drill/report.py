"""A drill's report: the verdict and its reasons, as JSON and as Markdown.

Both say the same: the hypothesis, the scenario, the fault and whether the app simulated it, the
blast radius, the time window, per answering tier the turns and their p50/p95 waits, the
user-visible errors, the checks (what users saw against what should be shown), the recovery
check, and ``"verdict": "pass"`` only when every one of them held. They go to the report folder
and, with the end call, to the server (web.drills keeps them with the drill).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from web.drill_faults import DrillFault

from .recovery import Recovery
from .scenarios import in_app
from .stats import EXAMPLES, Check, TierFigures, is_error
from .user_path import Observation

RECOVERY_PENDING = (
    "Checked once this end call has removed the fault: the report files of `understudy drill` "
    "say whether the primary answered again, and the command's exit code counts it."
)


@dataclass
class DrillResult:
    scenario: str
    summary: str
    hypothesis: str
    target: str
    in_process: bool
    upstream: str
    """ "simulator", "real providers" or "unknown" (the page's demo notice says which)."""
    instance_wide: bool
    faults: tuple[DrillFault, ...]
    prompts: int
    concurrency: int
    sla: str
    """Where the SLA comes from and what it is, in words."""
    started_at: float
    ended_at: float
    drill_id: str | None = None
    observations: list[Observation] = field(default_factory=list)
    figures: list[TierFigures] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    recovery: Recovery | None = None
    aborted: str | None = None
    """Why the drill stopped early (an abort condition, Ctrl-C), if it did."""
    problem: str | None = None
    """Why the drill could not run, if it could not."""
    recovery_pending: bool = False
    """The report sent with the end call: the recovery check can only come after it (the end
    call is what removes the fault), so that report says it is still to come."""

    @property
    def verdict(self) -> str:
        return "pass" if not self.reasons else "fail"

    @property
    def reasons(self) -> list[str]:
        """Why the verdict is fail (empty: every hypothesis held)."""
        found = []
        if self.problem:
            found.append(f"the drill could not run: {self.problem}")
        if self.aborted:
            found.append(f"aborted: {self.aborted}")
        for check in self.checks:
            if not check.passed:
                found.append(f"{check.name}: expected {check.expected}, saw {check.seen}")
        if self.recovery is not None and not self.recovery.passed:
            found.append(
                f"recovery: {self.recovery.tier} did not answer again within "
                f"{self.recovery.bound_s:g} s (last: {self.recovery.last_seen})"
            )
        if self.recovery is None and not self.problem and not self.recovery_pending:
            found.append("recovery: not checked")
        return found

    @property
    def server_verdict(self) -> str:
        """The verdict the drill API keeps: "error" when it could not run, "aborted" when it
        stopped early."""
        if self.problem:
            return "error"
        return "aborted" if self.aborted else self.verdict


def fault_words(fault: DrillFault) -> str:
    params = ""
    if fault.delay_s:
        params = f" ({fault.delay_s:g} s)"
    if fault.after_tokens:
        params = f" (after {fault.after_tokens} tokens)"
    how = (
        "simulated in the app: the tier fails this way for the drill's turns"
        if in_app(fault)
        else "real: the provider itself refused the invalid key"
    )
    return f"{fault.tier}: {fault.kind.value}{params}, {how}"


def blast_radius(instance_wide: bool) -> str:
    if instance_wide:
        return "instance-wide: every turn on the instance while the drill ran (a staging drill)"
    return "the drill's own turns only: the instance's users were unaffected"


def _when(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="seconds")


def to_json(result: DrillResult) -> dict[str, Any]:
    return {
        "scenario": result.scenario,
        "summary": result.summary,
        "hypothesis": result.hypothesis,
        "drill_id": result.drill_id,
        "target": result.target,
        "in_process": result.in_process,
        "upstream": result.upstream,
        "faults": [
            {**f.to_json(), "simulated_in_app": in_app(f), "words": fault_words(f)}
            for f in result.faults
        ],
        "blast_radius": blast_radius(result.instance_wide),
        "instance_wide": result.instance_wide,
        "window": {
            "started_at": _when(result.started_at),
            "ended_at": _when(result.ended_at),
            "duration_s": round(result.ended_at - result.started_at, 3),
        },
        "prompts": result.prompts,
        "sent": len(result.observations),
        "concurrency": result.concurrency,
        "sla": result.sla,
        "tiers": [asdict(f) for f in result.figures],
        "errors": {
            "user_visible": sum(1 for s in result.observations if is_error(s)),
            "problems": [s.problem for s in result.observations if s.problem][:EXAMPLES],
        },
        "checks": [asdict(c) for c in result.checks],
        "turns": [_turn(s) for s in sorted(result.observations, key=lambda s: s.prompt)],
        "recovery": (
            asdict(result.recovery)
            if result.recovery is not None
            else {"pending": True, "note": RECOVERY_PENDING}
            if result.recovery_pending
            else None
        ),
        "aborted": result.aborted,
        "problem": result.problem,
        "verdict": result.verdict,
        "reasons": result.reasons,
    }


def _turn(seen: Observation) -> dict[str, Any]:
    """One message as its user saw it (the prompt is the shipped or given one: not kept)."""
    final = asdict(seen.final) if seen.final is not None else None
    return {
        "prompt": seen.prompt + 1,
        "turn_id": seen.turn_id,
        "shown": final,
        "queued": asdict(seen.queued) if seen.queued is not None else None,
        "ttft_s": _round(seen.ttft_s),
        "total_s": _round(seen.total_s),
        "queued_s": _round(seen.queued_s),
        "tiers_shown": seen.tiers_shown,
        "reconnects": seen.reconnects,
        "problem": seen.problem,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _cell(text: object) -> str:
    """Table-safe: a reply's words may hold a pipe or a newline."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _tries(count: int) -> str:
    return f"{count} {'try' if count == 1 else 'tries'}"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def to_markdown(result: DrillResult, *, level: int = 1) -> str:
    h = "#" * level
    lines = [
        f"{h} Drill {result.scenario}: {result.verdict.upper()}",
        "",
        f"**Hypothesis.** {result.hypothesis}",
        "",
        "| | |",
        "|---|---|",
        f"| Drill | `{result.drill_id or '-'}` on {result.target}"
        f"{' (in-process)' if result.in_process else ''}, upstream: {result.upstream} |",
        f"| Scenario | {_cell(result.summary)} |",
        *(f"| Fault | {_cell(fault_words(f))} |" for f in result.faults),
        f"| Blast radius | {blast_radius(result.instance_wide)} |",
        f"| Window | {_when(result.started_at)} to {_when(result.ended_at)} "
        f"({result.ended_at - result.started_at:.1f} s) |",
        f"| Messages | {len(result.observations)} of {result.prompts} sent, "
        f"concurrency {result.concurrency} |",
        f"| SLA | {_cell(result.sla)} |",
        "",
        f"{h}# Verdict: {result.verdict}",
        "",
    ]
    reasons = result.reasons
    lines += [f"- {_cell(r)}" for r in reasons] or ["Every hypothesis held."]
    lines += [
        "",
        f"{h}# Turns per answering tier",
        "",
        "| tier | turns | first token p50 | p95 | whole reply p50 | p95 |",
        "|---|---|---|---|---|---|",
    ]
    for f in result.figures:
        lines.append(
            f"| {f.tier or 'none'} | {f.turns} | {_seconds(f.ttft_p50_s)} | "
            f"{_seconds(f.ttft_p95_s)} | {_seconds(f.total_p50_s)} | {_seconds(f.total_p95_s)} |"
        )
    errors = sum(1 for s in result.observations if is_error(s))
    lines += [
        "",
        f"User-visible errors: {errors} of {len(result.observations)} messages.",
        "",
        f"{h}# Checks: what users saw against what should be shown",
        "",
        "| check | expected | seen | held |",
        "|---|---|---|---|",
    ]
    for c in result.checks:
        lines.append(
            f"| {c.name} | {_cell(c.expected)} | {_cell(c.seen)} | {'yes' if c.passed else 'NO'} |"
        )
    for c in result.checks:
        if c.mismatches:
            lines += ["", f"{c.name}, seen instead:", *(f"- {_cell(m)}" for m in c.mismatches)]
    lines += ["", f"{h}# Recovery", ""]
    rec = result.recovery
    if rec is None:
        lines.append(RECOVERY_PENDING if result.recovery_pending else "Not checked.")
    elif rec.passed:
        lines.append(
            f"{rec.tier} answered again: its first words came {rec.after_s:.1f} s after the "
            f"drill ended (bound {rec.bound_s:g} s, {_tries(rec.tries)})."
        )
    else:
        lines.append(
            f"{rec.tier} did not answer again within {rec.bound_s:g} s "
            f"({_tries(rec.tries)}; last: {_cell(rec.last_seen)})."
        )
    return "\n".join(lines) + "\n"


def quarterly_json(results: Sequence[DrillResult]) -> dict[str, Any]:
    reasons = [f"{r.scenario}: {reason}" for r in results for reason in r.reasons]
    return {
        "scenario": "quarterly",
        "drills": [to_json(r) for r in results],
        "verdict": "fail" if reasons or not results else "pass",
        "reasons": reasons,
    }


def quarterly_markdown(results: Sequence[DrillResult]) -> str:
    verdict = quarterly_json(results)["verdict"]
    lines = [
        f"# Quarterly drill: {str(verdict).upper()}",
        "",
        "| scenario | verdict | drill |",
        "|---|---|---|",
        *(f"| {r.scenario} | {r.verdict} | `{r.drill_id or '-'}` |" for r in results),
        "",
    ]
    return "\n".join(lines) + "\n".join(to_markdown(r, level=2) for r in results)


def write(report_dir: Path, stem: str, data: dict[str, Any], markdown: str) -> tuple[Path, Path]:
    report_dir.mkdir(parents=True, exist_ok=True)
    json_path = report_dir / f"{stem}.json"
    md_path = report_dir / f"{stem}.md"
    json_path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    md_path.write_text(markdown, encoding="utf-8")
    return json_path, md_path
