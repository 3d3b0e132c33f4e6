"""Chaos under load: N concurrent chats through the real app while random faults hit every tier.

    .venv/bin/python bench/chaos.py --chats 20 --seconds 30
    .venv/bin/python bench/chaos.py --chats 100 --seconds 60 --seed 7

It starts `understudy sim` and `understudy serve` on loopback (as bench/app_streams.py does), the
app on a copy of the default chain (web/chain.toml: the same tiers, ids and breakers) whose
timeouts are short enough for a run of a minute, with the turn deadline `--deadline`.

- N chats (``chaos_chat``): browser sessions sending messages back to back, each followed over
  SSE to its final event; now and then a new conversation, a Stop or a reload mid-stream.
- A fault loop (``chaos_faults``): every few seconds, new random faults of every kind on random
  tiers (hangs included, every tier down at times), from a schedule seeded by `--seed`.
- After `--seconds`: the faults are cleared, every chat finishes the turn it is in, and
  ``chaos_check`` holds every message against the streams, the app's pages and the SQLite turn
  log (read-only).

The last line is the verdict, e.g.
`chaos: turns=812 terminal=812 lost=0 hung=0 http_5xx=0 false_success=0`; the exit code is 0
when lost, hung, http_5xx and false_success are all zero, else 1, after the first offenders
and the server log lines that name them. The temporary folder (logs, database) is kept when a
run fails, or with `--keep`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import tomllib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from app_streams import free_port, percentile, start, stop, understudy, wait_for
from chaos_chat import ChatPolicy, ChatSession, HttpLog, TurnRecord
from chaos_check import (
    Expected,
    Verdict,
    check_pages,
    check_streams,
    check_turn_log,
    read_turn_log,
)
from chaos_faults import FaultLog, Schedule, fault_loop

from web.settings import DEFAULT_CHAIN_FILE, load_chain

SHOWN = 5
"""Offenders printed per kind."""


@dataclass
class Run:
    records: list[TurnRecord]
    faults: FaultLog
    http_log: HttpLog
    verdict: Verdict
    sim_outcomes: Counter[str]
    pages: int
    errors: list[str]
    seconds: float
    failed_skips: list[tuple[float, frozenset[str]]]


def chain_file(path: Path, *, first_token_s: float, deadline_s: float) -> dict[str, str]:
    """Write the default chain with short timeouts to ``path``; returns tier name -> model."""
    data = tomllib.loads(DEFAULT_CHAIN_FILE.read_text(encoding="utf-8"))
    lines = ["# The default chain (web/chain.toml) with the chaos bench's short timeouts."]
    for tier in data["tiers"]:
        tier["timeouts"] = {
            "connect_s": 2.0,
            "first_token_s": first_token_s,
            "idle_s": first_token_s,
            "total_s": deadline_s,
        }
        lines += ["", "[[tiers]]", *(f"{key} = {_toml(value)}" for key, value in tier.items())]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {tier.name: tier.model for tier in load_chain(path)}  # fails loudly if it is wrong


def _toml(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    raise TypeError(f"the chain file has a value the bench cannot copy: {value!r}")


async def chaos(
    sim_url: str, app_url: str, database: Path, models: Mapping[str, str], args: argparse.Namespace
) -> Run:
    clock = time.monotonic
    limit_s = args.deadline + args.margin
    http_log = HttpLog()
    policy = ChatPolicy()
    sessions = [
        ChatSession(
            i,
            app_url,
            seed=args.seed,
            limit_s=limit_s,
            clock=clock,
            http_log=http_log,
            policy=policy,
        )
        for i in range(args.chats)
    ]
    schedule = Schedule(
        args.seed,
        list(models.items()),
        reply_tokens=args.reply_tokens,
        first_token_s=args.first_token_timeout,
        idle_s=args.first_token_timeout,
    )
    faults = FaultLog()
    done = asyncio.Event()
    began = clock()
    until = began + args.seconds
    spread_s = args.first_token + args.reply_tokens / args.tokens_per_s

    async def chat(session: ChatSession) -> None:
        # Starts spread over one reply, so the load is steady rather than N POSTs at once.
        await asyncio.sleep(spread_s * session.index / len(sessions))
        await session.run(until)

    async with httpx.AsyncClient(base_url=sim_url, timeout=10.0) as sim:
        await sim.delete("/requests")
        loop = asyncio.create_task(fault_loop(sim, schedule, done, faults, clock))
        chats = asyncio.gather(*(chat(s) for s in sessions))
        await asyncio.sleep(args.seconds)
        done.set()
        await loop  # the faults are cleared now
        await chats
        seconds = clock() - began
        logged = (await sim.get("/requests")).json()
    sim_outcomes = Counter(str(entry["outcome"]) for entry in logged)

    records = [r for s in sessions for r in s.records]
    expected = Expected(models, args.reply_tokens)
    verdict = Verdict()
    log = read_turn_log(database)
    verdict.attempts = log.attempts
    prompts = {turn.id: turn.prompt for turn in log.turns}
    check_turn_log(log.turns, records, expected, verdict)
    check_streams(records, expected, prompts, verdict)
    pages = await check_pages(sessions, expected, prompts, http_log, verdict)
    verdict.http_5xx = http_log.server_error_count
    errors = [e for s in sessions for e in s.errors]
    await asyncio.gather(*(s.aclose() for s in sessions))
    return Run(
        records,
        faults,
        http_log,
        verdict,
        sim_outcomes,
        pages,
        errors,
        seconds,
        log.failed_skips,
    )


def _seconds(values: list[float]) -> str:
    if not values:
        return "-"
    return f"p50 {statistics.median(values):.2f} s, p95 {percentile(values, 95):.2f} s"


def _counts(counter: Mapping[Any, int]) -> str:
    return ", ".join(f"{key} {n}" for key, n in sorted(counter.items(), key=lambda kv: -kv[1]))


def report(run: Run, models: Mapping[str, str], args: argparse.Namespace, app_log: Path) -> None:
    records, verdict, faults = run.records, run.verdict, run.faults
    print(
        f"\n{args.chats} chats for {args.seconds:g} s (all done after {run.seconds:.1f} s), "
        f"seed {args.seed}, {os.cpu_count()} CPUs; tiers {' -> '.join(models)}, first-token "
        f"and idle timeouts {args.first_token_timeout:g} s, turn deadline {args.deadline:g} s; "
        f"replies of {args.reply_tokens} tokens at {args.tokens_per_s:g}/s after "
        f"{args.first_token:g} s"
    )
    print(
        f"faults: {sum(faults.periods.values())} periods ({_counts(faults.periods)}); "
        f"{len(faults.applied)} faults set, on {_counts(faults.by_tier)}"
    )
    kinds = ", ".join(
        f"{kind} {n} ({run.sim_outcomes.get(kind, 0)})" for kind, n in faults.kinds.most_common()
    )
    print(f"  by kind (model requests they hit): {kinds}")
    print(
        f"model requests (simulator log): {sum(run.sim_outcomes.values())}, "
        f"{run.sim_outcomes.get('ok', 0)} healthy"
    )
    actions = Counter(r.action.value for r in records)
    new = sum(r.new_conversation for r in records)
    reopened = sum(r.reopened for r in records)
    print(
        f"messages: {len(records)} sent ({new} new conversations; {_counts(actions)}); "
        f"streams: {_counts(Counter(r.state or 'no final event' for r in records))}; "
        f"reopened after closing without a final event: {reopened}; "
        f"pages read at the end: {run.pages}"
    )
    if run.http_log.statuses:
        print(f"app answers >= 400: {_counts(run.http_log.statuses)}")
    by_tier: dict[str, Counter[str]] = {}
    for (tier, status), n in verdict.statuses.items():
        by_tier.setdefault(tier, Counter())[status] = n
    print("turn log: " + "; ".join(f"{t} {_counts(c)}" for t, c in sorted(by_tier.items())))
    tried: dict[str, Counter[str]] = {}
    for (tier, outcome), n in verdict.attempts.items():
        tried.setdefault(tier, Counter())[outcome] = n
    print("attempts: " + "; ".join(f"{t} {_counts(c)}" for t, c in tried.items()))
    failed = sum(n for (_, status), n in verdict.statuses.items() if status == "failed")
    healthy_skipped = sum(
        1
        for when, tiers in run.failed_skips
        if (faulted := faults.faulted_at(when)) is not None and tiers - faulted
    )
    print(
        f"failed turns: {failed}; {len(run.failed_skips)} skipped a tier whose breaker was "
        f"open, {healthy_skipped} of them one that had no fault set when the turn started"
    )
    for tier in models:
        ttft = [r.ttft_s for r in records if r.state == "done" and r.tier == tier]
        shown = [t for t in ttft if t is not None]
        print(f"time to first text, replies done by {tier} (n={len(ttft)}): {_seconds(shown)}")
    spans = [r.ended - r.started for r in records if r.ended is not None]
    if spans:
        print(
            f"message to final event: {_seconds(spans)}, longest {max(spans):.1f} s "
            f"(a request open {args.deadline + args.margin:g} s after its message is hung)"
        )
    for line in (run.errors + faults.errors + verdict.notes)[:SHOWN]:
        print(f"  note: {line}")
    offenders = {
        "lost": verdict.lost,
        "hung": verdict.hung,
        "false_success": verdict.false_success,
    }
    for name, found in offenders.items():
        for key, why in list(found.items())[:SHOWN]:
            print(f"  {name}: {key}: {why}")
    for line in run.http_log.server_errors[:SHOWN]:
        print(f"  http_5xx: {line}")
    if not verdict.ok:
        _server_lines(app_log, [k for found in offenders.values() for k in list(found)[:SHOWN]])


def _server_lines(app_log: Path, keys: list[str]) -> None:
    """The app's log lines about the offenders, and its errors."""
    lines = app_log.read_text(errors="replace").splitlines()
    picked = [
        line
        for line in lines
        if "ERROR" in line or "Traceback" in line or any(k in line for k in keys)
    ]
    for line in picked[:20]:
        print(f"  server: {line[:300]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--chats", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--deadline", type=float, default=25.0, help="turn deadline, seconds")
    parser.add_argument(
        "--margin", type=float, default=10.0, help="a stream open past deadline + margin is hung"
    )
    parser.add_argument("--first-token-timeout", type=float, default=3.0, help="seconds")
    parser.add_argument("--first-token", type=float, default=0.3, help="simulated, seconds")
    parser.add_argument("--tokens-per-s", type=float, default=20.0)
    parser.add_argument("--reply-tokens", type=int, default=40)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)

    base = Path(tempfile.mkdtemp(prefix="understudy-chaos-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNDERSTUDY_")}
    for name in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY"):
        env.pop(name, None)
    models = chain_file(
        base / "chain.toml", first_token_s=args.first_token_timeout, deadline_s=args.deadline
    )
    sim_port, app_port = free_port(), free_port()
    sim_url, app_url = f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{app_port}"
    sim = start([*understudy(), "sim", "--port", str(sim_port)], env, base / "sim.log")
    app: Any = None
    ok = False
    try:
        wait_for(f"{sim_url}/faults", sim, base / "sim.log")
        profile = {
            "model": "*",
            "first_token_s": args.first_token,
            "tokens_per_s": args.tokens_per_s,
            "reply_tokens": args.reply_tokens,
        }
        httpx.post(f"{sim_url}/models", json=profile).raise_for_status()
        app_env = {
            **env,
            "UNDERSTUDY_SIM_URL": sim_url,
            "UNDERSTUDY_DATA_DIR": str(base / "data"),
            "UNDERSTUDY_ADMIN_PASSWORD": "chaos",
            "UNDERSTUDY_CHAIN": str(base / "chain.toml"),
            "UNDERSTUDY_TURN_DEADLINE_S": str(args.deadline),
        }
        app = start([*understudy(), "serve", "--port", str(app_port)], app_env, base / "app.log")
        wait_for(f"{app_url}/healthz", app, base / "app.log")
        database = base / "data" / "understudy.db"
        run = asyncio.run(chaos(sim_url, app_url, database, models, args))
        report(run, models, args, base / "app.log")
        ok = run.verdict.ok
        if not ok or args.keep:
            print(f"logs and database kept in {base}")
        print(run.verdict.line())
    finally:
        if app is not None:
            stop(app)
        stop(sim)
        if ok and not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
