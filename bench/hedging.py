"""Hedged first tokens: p50/p99 time to first token with and without hedging, and the extra
requests hedging sends, in the same run, through ``Chain.run`` over loopback HTTP.

    .venv/bin/python bench/hedging.py [--turns 400] [--rate 40] [--hedge-after-s 0.5]

The simulator runs in its own process (so its work does not queue behind the client being
measured). The primary's first token comes after ``--first-token-s``, except for a share of its
requests (``--slow-share``, 5 %) whose first token comes after ``--slow-s``: a
``slow_first_token`` fault with a ``probability`` and a ``seed``, set afresh before each mode, so
both modes slow the same draws. The next tier answers its first token after
``--hedge-first-token-s``. Each mode starts ``--turns`` turns at a steady ``--rate`` per second
(open loop: the same offered load in both modes, however long each turn takes) through the default
chain (the real SDKs at the simulator); "with" sets ``hedge_after_s`` on the primary.
Time to first token is ``Completed.ttft_s`` (from the start of the turn to the first text of the
reply kept); percentiles are nearest-rank. Extra requests are the model requests the simulator
logged beyond one per turn, over the number of turns. The hedge budget is the chain's own (10 %
of the primary's turns in the last minute).

Goal (issue 9): p99 cut at least 3x for at most 10 % extra requests.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing
import statistics
import sys
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from web.chain import Chain
from web.events import AttemptRecord, Completed
from web.providers.base import ChatMessage, ChatRequest
from web.settings import Settings
from web.status import AttemptOutcome, HedgeRole

PROMPT = "Explain what a hedged request is for."


def _serve_sim(conn: Connection) -> None:
    from web.sim.server import SimServer

    async def main() -> None:
        sim = SimServer()
        await sim.start()
        conn.send(sim.url)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, conn.recv)  # until the parent says stop
        await sim.stop()

    asyncio.run(main())


@dataclass(frozen=True)
class Mode:
    name: str
    ttfts: list[float]
    requests: int
    hedges: int
    hedges_won: int
    turns: int
    wall_s: float

    @property
    def extra(self) -> float:
        return (self.requests - self.turns) / self.turns


def _rank(values: list[float], share: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


async def _control(client: httpx.AsyncClient, method: str, path: str, body: object = None) -> None:
    response = await client.request(method, path, json=body)
    if response.status_code >= 300:
        raise RuntimeError(f"simulator {method} {path}: {response.status_code} {response.text}")


async def _mode(
    name: str, chain: Chain, args: argparse.Namespace, control: httpx.AsyncClient
) -> Mode:
    primary = chain.tiers[0].config.model
    await _control(control, "DELETE", "/faults")
    await _control(control, "DELETE", "/requests")
    slow = {
        "model": primary,
        "kind": "slow_first_token",
        "delay_s": args.slow_s,
        "probability": args.slow_share,
        "seed": args.seed,
    }
    await _control(control, "POST", "/faults", slow)
    request = ChatRequest(messages=(ChatMessage("user", PROMPT),))
    ttfts: list[float] = []
    records: list[AttemptRecord] = []

    async def turn() -> None:
        done: Completed | None = None
        async for event in chain.run(request, on_attempt=records.append):
            if isinstance(event, Completed):
                done = event
        if done is None or done.ttft_s is None:
            raise RuntimeError(f"a turn did not answer ({name}); the bench needs a healthy sim")
        ttfts.append(done.ttft_s)

    loop = asyncio.get_running_loop()
    start = loop.time()
    running: list[asyncio.Task[None]] = []
    for index in range(args.turns):
        await asyncio.sleep(max(0.0, start + index / args.rate - loop.time()))
        running.append(loop.create_task(turn()))
    await asyncio.gather(*running)
    wall_s = loop.time() - start
    response = await control.get("/requests")
    requests = len(response.json())
    hedges = [r for r in records if r.hedge is HedgeRole.HEDGE]
    won = [r for r in hedges if r.outcome is AttemptOutcome.OK]
    return Mode(name, ttfts, requests, len(hedges), len(won), args.turns, wall_s)


async def run(args: argparse.Namespace, sim_url: str) -> bool:
    settings = Settings.from_env({"UNDERSTUDY_SIM_URL": sim_url})
    primary, hedge = settings.tiers[0], settings.tiers[1]
    async with httpx.AsyncClient(base_url=sim_url, timeout=10.0) as control:
        for model, first_token_s in (
            (primary.model, args.first_token_s),
            (hedge.model, args.hedge_first_token_s),
        ):
            profile = {"model": model, "first_token_s": first_token_s, "reply_tokens": 20}
            await _control(control, "POST", "/models", {**profile, "tokens_per_s": 400.0})
        plain = settings
        hedged = replace(
            settings,
            tiers=(replace(primary, hedge_after_s=args.hedge_after_s), *settings.tiers[1:]),
        )
        modes: list[Mode] = []
        for name, chosen in (("without", plain), ("with", hedged)):
            chain = Chain.from_settings(chosen)
            try:
                modes.append(await _mode(name, chain, args, control))
            finally:
                await chain.aclose()

    print(
        f"hedging: {args.turns} turns per mode, started at {args.rate:g}/s; primary "
        f"{primary.label} first token {args.first_token_s:g} s, {args.slow_share:.0%} of its "
        f"requests (seed {args.seed}) {args.slow_s:g} s; {hedge.label} first token "
        f"{args.hedge_first_token_s:g} s; hedge after {args.hedge_after_s:g} s"
    )
    print(
        f"  {'mode':<8} {'p50 ttft':>9} {'p99 ttft':>9} {'max ttft':>9} {'requests':>9} "
        f"{'extra':>7} {'hedges':>7} {'won':>5} {'wall':>7}"
    )
    for m in modes:
        print(
            f"  {m.name:<8} {statistics.median(m.ttfts):8.3f}s {_rank(m.ttfts, 0.99):8.3f}s "
            f"{max(m.ttfts):8.3f}s {m.requests:>9} {m.extra:>7.1%} {m.hedges:>7} "
            f"{m.hedges_won:>5} {m.wall_s:6.1f}s"
        )
    without, with_ = modes
    cut = _rank(without.ttfts, 0.99) / _rank(with_.ttfts, 0.99)
    p50 = statistics.median(with_.ttfts) / statistics.median(without.ttfts)
    extra = with_.extra - without.extra
    ok = cut >= 3.0 and extra <= 0.10
    print(
        f"p99 cut x{cut:.2f} for {extra:.1%} extra requests (p50 with/without x{p50:.3f}); "
        f"goal (p99 cut >= 3x for <= 10 % extra requests): {'met' if ok else 'NOT met'}"
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--turns", type=int, default=400, help="turns per mode")
    parser.add_argument("--rate", type=float, default=40.0, help="turns started per second")
    parser.add_argument("--first-token-s", type=float, default=0.15, help="the primary's")
    parser.add_argument("--slow-share", type=float, default=0.05, help="of the primary's requests")
    parser.add_argument("--slow-s", type=float, default=3.0, help="their first token")
    parser.add_argument("--hedge-first-token-s", type=float, default=0.1, help="the next tier's")
    parser.add_argument("--hedge-after-s", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=7, help="of the slow requests' draws")
    args = parser.parse_args()

    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    sim = context.Process(target=_serve_sim, args=(child,), daemon=True)
    sim.start()
    try:
        if not parent.poll(30):
            raise RuntimeError("the simulator did not start within 30 s")
        url = parent.recv()
        assert isinstance(url, str)
        asyncio.run(run(args, url))  # prints the verdict; a miss is a figure, not a crash
    finally:
        parent.send("stop")
        sim.join(10)
        if sim.is_alive():
            sim.terminate()
            sim.join(5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
