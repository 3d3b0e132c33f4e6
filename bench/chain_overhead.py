"""How much the chain adds: time to first token and total time through ``Chain.run`` vs. the same
streaming call made directly with the official SDK, against the simulator, in the same run.

    .venv/bin/python bench/chain_overhead.py [--streams 100] [--rounds 10] [--provider anthropic]

The simulator runs in its own process on loopback (so its work does not queue behind the client
being measured) and is stopped at the end. Each round runs ``--streams`` concurrent streams of one
mode, in a shuffled order each round so drift hits all of them alike; differences are reported
as the median over rounds of the per-round median differences (paired), next to the ratios of
the pooled medians and p99s, and this process's CPU time per stream:

    sdk       the SDK's own streaming call and typed iterator (what one would write by hand)
    provider  the adapter alone (web.providers.*: SDK request, own SSE reading)
    chain     Chain.run with the default chain at the simulator (the primary answers)

Goal: the chain adds under 2 ms at the median with 100 concurrent streams. On a small shared
machine the paired figure moves by a millisecond or two between runs; use more --rounds to settle it.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import anthropic
import openai

from web.chain import Chain
from web.events import Completed
from web.providers.base import ChatMessage, ChatRequest, Provider, TextDelta
from web.settings import Settings
from web.sim import sim_base_url

PROMPT = "Explain what a fallback chain is for."
MODES = ("sdk", "provider", "chain")


@dataclass(frozen=True)
class Sample:
    ttft_s: float
    total_s: float


Stream = Callable[[], Awaitable[Sample]]


def _serve_sim(conn: Connection, first_token_s: float, tokens_per_s: float, reply: int) -> None:
    from web.sim.server import ModelProfile, SimServer

    async def main() -> None:
        profile = ModelProfile(
            first_token_s=first_token_s,
            tokens_per_s=tokens_per_s,
            reply_tokens=reply,
            context_window=200_000,
        )
        sim = SimServer(default_profile=profile)
        await sim.start()
        conn.send(sim.url)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, conn.recv)  # until the parent says stop
        await sim.stop()

    asyncio.run(main())


def _sdk_stream(
    provider: str, base_url: str, model: str
) -> tuple[Stream, Callable[[], Awaitable[None]]]:
    """The direct call, written the way the SDK documents it (max_retries=0 like ours)."""
    if provider == "anthropic":
        claude = anthropic.AsyncAnthropic(api_key="bench", base_url=base_url, max_retries=0)

        async def one_claude() -> Sample:
            start = time.perf_counter()
            first = None
            stream = await claude.messages.create(
                model=model,
                max_tokens=1024,
                messages=[{"role": "user", "content": PROMPT}],
                stream=True,
            )
            async for event in stream:
                if first is None and event.type == "content_block_delta":
                    first = time.perf_counter()
            end = time.perf_counter()
            return Sample((first or end) - start, end - start)

        return one_claude, claude.close

    gpt = openai.AsyncOpenAI(api_key="bench", base_url=base_url, max_retries=0)

    async def one_gpt() -> Sample:
        start = time.perf_counter()
        first = None
        stream = await gpt.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": PROMPT}],
            max_completion_tokens=1024,
            stream=True,
            stream_options={"include_usage": True},
        )
        async for chunk in stream:
            if first is None and chunk.choices and chunk.choices[0].delta.content:
                first = time.perf_counter()
        end = time.perf_counter()
        return Sample((first or end) - start, end - start)

    return one_gpt, gpt.close


def _provider_stream(provider: Provider, model: str) -> Stream:
    request = ChatRequest(messages=(ChatMessage("user", PROMPT),))

    async def one() -> Sample:
        start = time.perf_counter()
        first = None
        async for item in provider.stream(request, model):
            if first is None and isinstance(item, TextDelta):
                first = time.perf_counter()
        end = time.perf_counter()
        return Sample((first or end) - start, end - start)

    return one


def _chain_stream(chain: Chain) -> Stream:
    request = ChatRequest(messages=(ChatMessage("user", PROMPT),))

    async def one() -> Sample:
        start = time.perf_counter()
        first = None
        done = False
        async for event in chain.run(request):
            if first is None and isinstance(event, TextDelta):
                first = time.perf_counter()
            elif isinstance(event, Completed):
                done = event.tier.is_primary
        end = time.perf_counter()
        if not done:
            raise RuntimeError("the primary did not answer; the benchmark needs a healthy upstream")
        return Sample((first or end) - start, end - start)

    return one


@dataclass
class Round:
    samples: list[Sample]
    cpu_s: float
    """This process's CPU time for the round (the simulator runs in another process)."""

    def median(self, metric: str) -> float:
        return statistics.median(_values(self.samples, metric))


def _values(samples: list[Sample], metric: str) -> list[float]:
    return [s.ttft_s if metric == "ttft_s" else s.total_s for s in samples]


async def _round(stream: Stream, streams: int) -> Round:
    cpu = time.process_time()
    samples = list(await asyncio.gather(*(stream() for _ in range(streams))))
    return Round(samples, time.process_time() - cpu)


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:8.2f} ms"


def _paired(rounds: dict[str, list[Round]], mode: str, base: str, metric: str) -> float:
    """Median over rounds of (mode's round median - base's round median): drift cancels out."""
    return statistics.median(
        a.median(metric) - b.median(metric) for a, b in zip(rounds[mode], rounds[base], strict=True)
    )


async def run(args: argparse.Namespace, sim_url: str) -> bool:
    settings = Settings.from_env({"UNDERSTUDY_SIM_URL": sim_url})
    tiers = sorted(settings.tiers, key=lambda t: t.provider != args.provider)
    settings = replace(settings, tiers=tuple(tiers))
    primary = settings.tiers[0]
    chain = Chain.from_settings(settings)
    adapter_chain = Chain.from_settings(settings)  # its own client, used only as a bare adapter
    base_url = sim_base_url(sim_url, primary.provider)
    sdk, close_sdk = _sdk_stream(primary.provider, base_url, primary.model)
    modes: dict[str, Stream] = {
        "sdk": sdk,
        "provider": _provider_stream(adapter_chain.tiers[0].provider, primary.model),
        "chain": _chain_stream(chain),
    }
    rounds: dict[str, list[Round]] = {mode: [] for mode in MODES}
    shuffle = random.Random(args.seed)
    try:
        for mode in MODES:  # warm-up: connections, imports, caches
            await _round(modes[mode], args.streams)
        for _ in range(args.rounds):
            order = list(MODES)
            shuffle.shuffle(order)  # so drift and ordering effects hit every mode alike
            for mode in order:
                rounds[mode].append(await _round(modes[mode], args.streams))
    finally:
        await chain.aclose()
        await adapter_chain.aclose()
        await close_sdk()

    print(
        f"chain overhead: {args.provider} primary ({primary.model}), {args.streams} concurrent "
        f"streams per round, {args.rounds} rounds per mode ({args.rounds * args.streams} streams "
        f"each); simulator in its own process: first token {args.first_token_s * 1000:g} ms, "
        f"{args.tokens_per_s:g} tokens/s, {args.reply_tokens} tokens per reply"
    )
    for metric, title in (("ttft_s", "time to first token"), ("total_s", "total time")):
        print(f"{title}:")
        for mode in MODES:
            values = [v for r in rounds[mode] for v in _values(r.samples, metric)]
            print(f"  {mode:<9} median {_ms(statistics.median(values))}   p99 {_ms(_p99(values))}")
        for mode, base in (("chain", "sdk"), ("chain", "provider"), ("provider", "sdk")):
            mine = [v for r in rounds[mode] for v in _values(r.samples, metric)]
            theirs = [v for r in rounds[base] for v in _values(r.samples, metric)]
            ratio = statistics.median(mine) / statistics.median(theirs)
            p99_ratio = _p99(mine) / _p99(theirs)
            print(
                f"  {mode} vs {base:<9} median {_paired(rounds, mode, base, metric) * 1000:+7.2f} ms"
                f" (paired by round; ratio of medians x{ratio:.3f}, of p99 x{p99_ratio:.3f})"
            )
    print("client CPU per stream:")
    cpu = {m: statistics.median(r.cpu_s / args.streams for r in rounds[m]) for m in MODES}
    for mode in MODES:
        print(f"  {mode:<9} {cpu[mode] * 1e6:8.0f} us")
    print(
        f"  chain vs sdk {(cpu['chain'] - cpu['sdk']) * 1e6:+.0f} us, chain vs provider "
        f"{(cpu['chain'] - cpu['provider']) * 1e6:+.0f} us"
    )
    added = _paired(rounds, "chain", "sdk", "ttft_s")
    added_total = _paired(rounds, "chain", "sdk", "total_s")
    ok = added < 0.002 and added_total < 0.002
    print(
        f"goal (chain adds < 2 ms at the median vs the direct SDK call): "
        f"{'met' if ok else 'NOT met'} (first token {added * 1000:+.2f} ms, "
        f"total {added_total * 1000:+.2f} ms)"
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--streams", type=int, default=100, help="concurrent streams per round")
    parser.add_argument("--rounds", type=int, default=10, help="measured rounds per mode")
    parser.add_argument("--provider", choices=("anthropic", "openai"), default="anthropic")
    parser.add_argument("--first-token-s", type=float, default=0.05)
    parser.add_argument("--tokens-per-s", type=float, default=100.0)
    parser.add_argument("--reply-tokens", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1, help="seed of the mode order per round")
    args = parser.parse_args()

    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    sim = context.Process(
        target=_serve_sim,
        args=(child, args.first_token_s, args.tokens_per_s, args.reply_tokens),
        daemon=True,
    )
    sim.start()
    try:
        if not parent.poll(30):
            raise RuntimeError("the simulator did not start within 30 s")
        url = parent.recv()
        assert isinstance(url, str)
        asyncio.run(run(args, url))  # prints the verdict; a noisy miss is a figure, not a crash
    finally:
        parent.send("stop")
        sim.join(10)
        if sim.is_alive():
            sim.terminate()
            sim.join(5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
