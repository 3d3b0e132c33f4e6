"""What the app adds to a streamed reply: N concurrent chats through its real HTTP + SSE path,
compared with N direct SDK streams from the same simulator in the same run.

    .venv/bin/python bench/app_streams.py --chats 100
    .venv/bin/python bench/app_streams.py --chats 500
    .venv/bin/python bench/app_streams.py --chats 200 --workers 2 --redis \
        --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/<a fresh database>

It starts `understudy sim` and `understudy serve` (pointed at that simulator) on loopback ports,
runs two phases against the same model profile, prints the figures and stops both servers.

- direct: each of N loops streams replies with the official Anthropic SDK straight from the
  simulator (what a client with no app in between sees).
- app: each of N loops is one browser session: POST a message to its conversation, open the reply's
  SSE stream, read it to the final event (exactly what the page does).

Every chat first runs one untimed warm-up turn (the app: open the page, first message, its stream);
once all are warm, each runs `--turns` timed turns back to back. Starts are spread over one reply's
duration, so about N replies stream at any moment (a closed loop, not a burst of N POSTs in the
same millisecond). Time to first token counts from the start of the request (the SDK call, or
the POST) to the first text received. Every reply is checked against the simulator's deterministic
text; a mismatch counts as an error.

The server's CPU is summed over all its processes (``--workers N``: the parent and its children,
found through /proc/<pid>/task/*/children; a child that exited and was reaped is counted in its
parent's cutime/cstime) between the start and the end of the app phase. The machine is shared
and noisy, so the figure that is compared across runs is a ratio against a baseline taken in the
same run: the load generator's own CPU per token during the direct phase (the official SDK's
streaming, which no change to the app touches). Peak memory is each server process's VmHWM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import html
import os
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import anthropic
import httpx
import httpx2
import redis

from web.sim.replies import reply_text, tokenize

MODEL = "claude-sonnet-4-6"
START_TIMEOUT_S = 120.0
"""Generous: other work on a shared machine can slow the start a lot."""
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
STREAM_URL = re.compile(r'sse-connect="([^"]+)"')
BODY = re.compile(
    r'(?:data-testid="reply-body"|id="body-[0-9a-f]+" hx-swap-oob="innerHTML")>(.*?)</div>', re.S
)
RAW = re.compile(r'<template id="raw-[0-9a-f]+">(.*?)</template>', re.S)
STATE = re.compile(r'data-state="([a-z]+)"')
REDIS_URL = "redis://127.0.0.1:6379/0"

TODAY_CPU_RATIO = 3.8
"""Server CPU per token over the load generator's direct-phase CPU per token, on main before
issue 12's CPU work (558df6c, --chats 100, 4 runs on this shared 2-core machine: 3.40, 3.80,
4.01, 3.91; 1.35-1.60 ms of server CPU per token); the goal is a quarter of it."""
GOALS_CHATS = 100
"""The one-worker goals are stated for this many chats."""


@dataclass
class Sample:
    ttft_s: float
    tokens: int
    stream_s: float
    """From the first text to the last."""
    accept_s: float | None = None
    """App only: how long the POST that sends the message took."""
    start: float = 0.0
    end: float = 0.0


@dataclass
class Phase:
    name: str
    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    started: float = 0.0
    ended: float = 0.0

    def add_error(self, message: str) -> None:
        self.errors.append(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def understudy() -> list[str]:
    script = Path(sys.executable).parent / "understudy"
    return [str(script)] if script.exists() else [sys.executable, "-m", "web.cli"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and of its children that it has reaped."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the ")": state is fields[0], so utime, stime, cutime, cstime are fields[11:15].
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def process_tree(root: int) -> list[int]:
    """``root`` and every process below it that is still there."""
    found, queue = [], [root]
    while queue:
        pid = queue.pop()
        found.append(pid)
        for children in Path(f"/proc/{pid}/task").glob("*/children"):
            try:
                queue.extend(int(child) for child in children.read_text().split())
            except OSError:
                continue  # the thread ended while we looked
    return found


def tree_cpu_seconds(root: int) -> float:
    """CPU of the whole server: each live process's own and what its exited children used
    (counted in their reaper's cutime/cstime, so nothing is counted twice)."""
    total = 0.0
    for pid in process_tree(root):
        try:
            total += cpu_seconds(pid)
        except OSError:
            continue  # exited between the listing and the read (its reaper has it now)
    return total


def memory_mib(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of a process, in MiB."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024
    return fields.get("VmRSS", 0.0), fields.get("VmHWM", 0.0)


def tree_memory_mib(root: int) -> dict[int, tuple[float, float]]:
    """(current, peak) resident memory of each live server process, by pid."""
    memory = {}
    for pid in process_tree(root):
        try:
            memory[pid] = memory_mib(pid)
        except OSError:
            continue
    return memory


@dataclass
class Usage:
    """CPU seconds used during a phase: the load generator (this process), the simulator and
    the app server (all its processes)."""

    client_s: float = 0.0
    sim_s: float = 0.0
    server_s: float = 0.0


class Meter:
    """Reads the CPU counters of this process, the simulator and the server tree."""

    def __init__(self, sim_pid: int, server_pid: int) -> None:
        self.sim_pid = sim_pid
        self.server_pid = server_pid

    def read(self) -> Usage:
        return Usage(
            time.process_time(), cpu_seconds(self.sim_pid), tree_cpu_seconds(self.server_pid)
        )

    def since(self, before: Usage) -> Usage:
        now = self.read()
        return Usage(
            now.client_s - before.client_s,
            now.sim_s - before.sim_s,
            now.server_s - before.server_s,
        )


# --- the two paths ---------------------------------------------------------------------------


async def direct_turn(client: anthropic.AsyncAnthropic, prompt: str, phase: Phase | None) -> None:
    start = time.perf_counter()
    first = last = 0.0
    parts: list[str] = []
    try:
        async with client.messages.stream(
            model=MODEL, max_tokens=1024, messages=[{"role": "user", "content": prompt}]
        ) as stream:
            async for text in stream.text_stream:
                last = time.perf_counter()
                if not parts:
                    first = last
                parts.append(text)
    except anthropic.APIError as exc:
        if phase is not None:
            phase.add_error(f"direct: {type(exc).__name__}: {exc}")
        return
    record(phase, prompt, "".join(parts), start, first, last)


_TLS = ssl.create_default_context()


class AppChat:
    """One browser session with one conversation."""

    def __init__(self, url: str, index: int) -> None:
        # One TLS context for all sessions: building one costs ~20 ms of CPU (and it is plain HTTP).
        self.http = httpx.AsyncClient(base_url=url, timeout=60.0, verify=_TLS)
        self.index = index
        self.csrf = ""
        self.conversation = ""

    async def open(self, prompt: str) -> None:
        page = await self.http.get("/")
        page.raise_for_status()
        match = CSRF.search(page.text)
        if match is None:
            raise RuntimeError("no CSRF token on the page")
        self.csrf = match.group(1)
        created = await self.http.post("/c", data={"content": prompt}, headers=self._headers())
        created.raise_for_status()
        self.conversation = created.headers["HX-Redirect"].removeprefix("/c/")
        page = await self.http.get(f"/c/{self.conversation}")
        match = STREAM_URL.search(page.text)
        if match is not None:
            await self._follow(match.group(1), time.perf_counter())

    def _headers(self) -> dict[str, str]:
        return {"X-CSRF-Token": self.csrf, "HX-Request": "true"}

    async def turn(self, prompt: str, phase: Phase | None) -> None:
        start = time.perf_counter()
        sent = await self.http.post(
            f"/c/{self.conversation}/messages", data={"content": prompt}, headers=self._headers()
        )
        if sent.status_code != 200:
            if phase is not None:
                phase.add_error(f"app: POST answered {sent.status_code}: {sent.text[:200]}")
            return
        accepted = time.perf_counter()
        match = STREAM_URL.search(sent.text)
        if match is None:
            if phase is not None:
                phase.add_error("app: the new turn has no stream URL")
            return
        first, last, final, state = await self._follow(match.group(1), start)
        if state != "done":
            if phase is not None:
                phase.add_error(f"app: reply ended {state!r}")
            return
        record(phase, prompt, final, start, first, last, accepted - start)

    async def _follow(self, path: str, start: float) -> tuple[float, float, str, str]:
        """Read the stream to its "done" event: (first text time, last text time, text, state)."""
        first = last = 0.0
        event, data = "", []
        async with self.http.stream("GET", path, headers={"Accept": "text/event-stream"}) as reply:
            async for line in reply.aiter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].removeprefix(" "))
                elif not line and data:
                    payload = "\n".join(data)
                    data = []
                    now = time.perf_counter()
                    if event == "done":
                        raw = RAW.search(payload)
                        state = STATE.search(payload)
                        text = html.unescape(raw.group(1)) if raw else ""
                        if not first and text:
                            first = now
                        return first, last or now, text, state.group(1) if state else "?"
                    # A body with text in it: a snapshot's, or an update swapping the body.
                    has_text = event in ("snapshot", "update") and bool(
                        (body := BODY.search(payload)) and body.group(1).strip()
                    )
                    if has_text:
                        last = now
                        first = first or now
        return first, last, "", "closed without a final event"

    async def aclose(self) -> None:
        await self.http.aclose()


def record(
    phase: Phase | None,
    prompt: str,
    text: str,
    start: float,
    first: float,
    last: float,
    accept_s: float | None = None,
) -> None:
    if phase is None:
        return
    expected = reply_text(MODEL, prompt, REPLY_TOKENS[0])
    if text != expected:
        phase.add_error(f"{phase.name}: wrong reply text for {prompt!r} ({len(text)} chars)")
        return
    phase.samples.append(
        Sample(
            ttft_s=first - start,
            tokens=len(tokenize(text)),
            stream_s=last - first,
            accept_s=accept_s,
            start=start,
            end=last,
        )
    )


REPLY_TOKENS = [0]
"""The profile's reply length, for checking texts (set once in main)."""


# --- running a phase --------------------------------------------------------------------------


async def run_phase(
    phase: Phase,
    chats: int,
    spread_s: float,
    warm_up: Callable[[int], Awaitable[None]],
    timed: Callable[[int, Phase], Awaitable[None]],
    around_timed: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext,
) -> None:
    """Warm every chat up (untimed), wait for all of them, then run the timed turns together."""

    async def staggered(index: int, step: Callable[[int], Awaitable[None]]) -> None:
        await asyncio.sleep(spread_s * index / chats)
        try:
            await step(index)
        except Exception as exc:
            phase.add_error(f"{phase.name} chat {index}: {type(exc).__name__}: {exc}")

    await asyncio.gather(*(staggered(i, warm_up) for i in range(chats)))
    # The load generator's own garbage-collector pauses would show up as server latency.
    gc.collect()
    gc.disable()
    try:
        with around_timed():
            phase.started = time.perf_counter()
            await asyncio.gather(*(staggered(i, lambda i: timed(i, phase)) for i in range(chats)))
            phase.ended = time.perf_counter()
    finally:
        gc.enable()


@contextlib.contextmanager
def py_spy(pid: int, out: Path | None) -> Iterator[None]:
    """``--profile``: py-spy records every process of the server while the block runs."""
    if out is None:
        yield
        return
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    form = (
        "flamegraph" if out.suffix == ".svg" else "speedscope" if out.suffix == ".json" else "raw"
    )
    command = [spy, "record", "--pid", str(pid), "--subprocesses", "--rate", "100"]
    # --nonblocking: do not pause the server at each sample (the figures stay those of a
    # server running freely).
    command += ["--format", form, "--output", str(out), "--nonblocking"]
    recorder = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield
    finally:
        recorder.send_signal(signal.SIGINT)
        _, err = recorder.communicate(timeout=60)
        if recorder.returncode != 0 and not out.exists():
            print(f"py-spy failed: {err.decode(errors='replace').strip()}")


async def bench(
    sim_url: str, app_url: str, args: argparse.Namespace, meter: Meter
) -> tuple[Phase, Phase, Usage, Usage]:
    """Both phases; returns them with the CPU each one used (warm-up turns included)."""
    # The SDK's own HTTP client package (httpx2), with room for every chat's connection.
    limits = httpx2.Limits(max_connections=args.chats * 2, max_keepalive_connections=args.chats)
    client = anthropic.AsyncAnthropic(
        api_key="bench",
        base_url=f"{sim_url}/anthropic",
        max_retries=0,
        http_client=httpx2.AsyncClient(limits=limits, timeout=60.0),
    )
    spread = args.first_token + args.reply_tokens / args.tokens_per_s
    direct = Phase("direct")

    async def direct_warm_up(index: int) -> None:
        await direct_turn(client, f"bench direct {index} warm-up", None)

    async def direct_timed(index: int, phase: Phase) -> None:
        for turn in range(args.turns):
            await direct_turn(client, f"bench direct {index} turn {turn}", phase)

    before = meter.read()
    await run_phase(direct, args.chats, spread, direct_warm_up, direct_timed)
    direct_cpu = meter.since(before)
    await client.close()

    app = Phase("app")
    sessions = [AppChat(app_url, i) for i in range(args.chats)]

    async def app_warm_up(index: int) -> None:
        await sessions[index].open(f"bench app {index} warm-up")

    async def app_timed(index: int, phase: Phase) -> None:
        for turn in range(args.turns):
            await sessions[index].turn(f"bench app {index} turn {turn}", phase)

    try:
        before = meter.read()
        profile = functools.partial(py_spy, meter.server_pid, args.profile)
        await run_phase(app, args.chats, spread, app_warm_up, app_timed, profile)
        app_cpu = meter.since(before)
    finally:
        await asyncio.gather(*(chat.aclose() for chat in sessions))
    return direct, app, direct_cpu, app_cpu


# --- servers ----------------------------------------------------------------------------------


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def wait_for(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited:\n{log.read_text()}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in {START_TIMEOUT_S}s:\n{log.read_text()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@dataclass
class Goal:
    name: str
    held: bool


def report(
    direct: Phase,
    app: Phase,
    args: argparse.Namespace,
    memory: tuple[dict[int, tuple[float, float]], dict[int, tuple[float, float]]],
    cpu: tuple[Usage, Usage],
) -> bool:
    setup = f"{args.workers} worker(s)" + (", Redis" if args.redis else "")
    if (args.database_url or "").startswith("postgres"):
        setup += ", PostgreSQL"
    else:
        setup += ", SQLite through aiosqlite's thread" if args.sqlite_thread else ", SQLite inline"
    print(
        f"\n{args.chats} concurrent chats x {args.turns} timed turns on {os.cpu_count()} CPUs "
        f"({setup}); simulated model: first token {args.first_token * 1000:.0f} ms, "
        f"{args.tokens_per_s:g} tokens/s, {args.reply_tokens} tokens per reply\n"
    )
    header = f"{'':8} {'replies':>8} {'errors':>7} {'TTFT p50':>10} {'TTFT p99':>10} {'tok/s/stream':>13} {'tok/s total':>12}"
    print(header)
    print("-" * len(header))
    rows: dict[str, tuple[float, float, float]] = {}
    for phase in (direct, app):
        ttfts = [s.ttft_s * 1000 for s in phase.samples]
        rates = [s.tokens / s.stream_s for s in phase.samples if s.stream_s > 0]
        # Over the window of the timed turns (the warm-up turns are not counted).
        window = (
            max(s.end for s in phase.samples) - min(s.start for s in phase.samples)
            if phase.samples
            else 0.0
        )
        total = sum(s.tokens for s in phase.samples) / max(window, 1e-9)
        p50 = statistics.median(ttfts) if ttfts else float("nan")
        p99 = percentile(ttfts, 99) if ttfts else float("nan")
        rows[phase.name] = (p50, p99, total)
        rate = statistics.median(rates) if rates else float("nan")
        print(
            f"{phase.name:8} {len(phase.samples):8d} {len(phase.errors):7d} {p50:8.1f}ms "
            f"{p99:8.1f}ms {rate:13.1f} {total:12.0f}"
        )
    if rows["direct"][0] > args.first_token * 1000 + 50:
        print(
            "note: direct streams are slower than the simulator's profile: the load generator "
            "(one Python process) is saturated, so the comparison below understates the app's cost"
        )
    throughput = rows["app"][2] / max(rows["direct"][2], 1e-9)
    added_p50 = rows["app"][0] - rows["direct"][0]
    added_p99 = rows["app"][1] - rows["direct"][1]
    print(f"\napp tokens/s: {throughput:.2f}x the direct side")
    print(f"added by the app: TTFT p50 {added_p50:+.1f} ms, p99 {added_p99:+.1f} ms")
    accepts = [s.accept_s * 1000 for s in app.samples if s.accept_s is not None]
    post_p99 = percentile(accepts, 99) if accepts else float("nan")
    if accepts:
        print(
            f"app POST (message stored, turn started): p50 {statistics.median(accepts):.1f} ms, "
            f"p99 {post_p99:.1f} ms"
        )

    at_start, at_end = memory
    print("app server memory (MiB, at start / at the end / peak):")
    for pid, (now, peak) in at_end.items():
        start_rss = at_start.get(pid, (float("nan"), 0.0))[0]
        print(f"  pid {pid}: {start_rss:.0f} / {now:.0f} / {peak:.0f}")
    print(
        f"  all {len(at_end)} process(es): {sum(m[0] for m in at_start.values()):.0f} / "
        f"{sum(m[0] for m in at_end.values()):.0f} / {sum(m[1] for m in at_end.values()):.0f}"
    )

    # Every turn of a phase streams reply_tokens tokens, warm-up turns included.
    streamed = args.chats * (args.turns + 1) * args.reply_tokens
    direct_cpu, app_cpu = cpu
    client_ms = direct_cpu.client_s / streamed * 1000
    server_ms = app_cpu.server_s / streamed * 1000
    ratio = server_ms / max(client_ms, 1e-9)
    print(
        f"load generator CPU per token, direct phase (the same-run baseline): {client_ms:.3f} ms; "
        f"simulator: {direct_cpu.sim_s / streamed * 1000:.3f} ms direct, "
        f"{app_cpu.sim_s / streamed * 1000:.3f} ms app phase"
    )
    print(
        f"app server CPU: {app_cpu.server_s:.1f} s for {streamed} tokens streamed "
        f"({server_ms:.3f} ms per token, all processes, all work included) = "
        f"{ratio:.2f}x the baseline"
        + (f" (today's main: {TODAY_CPU_RATIO:.2f}x)" if TODAY_CPU_RATIO else "")
    )
    for phase in (direct, app):
        for message in phase.errors[:5]:
            print(f"  error: {message}")

    goals = [Goal("no errors", not direct.errors and not app.errors)]
    if args.workers == 1 and args.chats == GOALS_CHATS:
        goals += [
            Goal("app tokens/s >= 0.9x direct", throughput >= 0.9),
            Goal("TTFT p99 added < 100 ms", added_p99 < 100),
            Goal("POST p99 < 100 ms", post_p99 < 100),
        ]
        if TODAY_CPU_RATIO:
            bound = TODAY_CPU_RATIO / 4
            goals.append(Goal(f"server CPU per token <= {bound:.2f}x the baseline", ratio <= bound))
    for goal in goals:
        print(f"goal: {goal.name}: {'held' if goal.held else 'NOT held'}")
    return all(goal.held for goal in goals)


def clean_redis(prefix: str) -> int:
    """Delete the run's keys; how many there were."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        return len(keys)
    finally:
        client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--chats", type=int, default=100)
    parser.add_argument("--turns", type=int, default=3, help="timed turns per chat")
    parser.add_argument("--first-token", type=float, default=0.3, help="seconds")
    parser.add_argument("--tokens-per-s", type=float, default=40.0)
    parser.add_argument("--reply-tokens", type=int, default=80)
    parser.add_argument(
        "--workers", type=int, default=1, help="app server processes (understudy serve --workers)"
    )
    parser.add_argument(
        "--redis",
        action="store_true",
        help=f"share live turns through the Redis at {REDIS_URL} (a key prefix of this run's own, "
        "deleted at the end)",
    )
    parser.add_argument(
        "--database-url", default=None, help="default: SQLite in a temporary data folder"
    )
    parser.add_argument(
        "--sqlite-thread",
        action="store_true",
        help="SQLite through aiosqlite's thread (UNDERSTUDY_SQLITE_INLINE=0), to compare",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="FILE",
        help="record the server with py-spy during the app phase's timed turns: raw collapsed "
        "stacks, or a flame graph (.svg), or speedscope (.json)",
    )
    args = parser.parse_args(argv)
    REPLY_TOKENS[0] = args.reply_tokens

    base = Path(tempfile.mkdtemp(prefix="understudy-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNDERSTUDY_")}
    env.pop("ANTHROPIC_API_KEY", None)
    env.pop("OPENAI_API_KEY", None)
    sim_port, app_port = free_port(), free_port()
    sim_url, app_url = f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{app_port}"
    sim = start([*understudy(), "sim", "--port", str(sim_port)], env, base / "sim.log")
    app: subprocess.Popen[bytes] | None = None
    prefix = f"understudy-bench-{uuid.uuid4().hex[:12]}:"
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
            "UNDERSTUDY_ADMIN_PASSWORD": "bench",
        }
        if args.database_url:
            app_env["UNDERSTUDY_DATABASE_URL"] = args.database_url
        if args.sqlite_thread:
            app_env["UNDERSTUDY_SQLITE_INLINE"] = "0"
        if args.redis:
            app_env["UNDERSTUDY_REDIS_URL"] = REDIS_URL
            app_env["UNDERSTUDY_REDIS_PREFIX"] = prefix
        serve = [*understudy(), "serve", "--port", str(app_port)]
        if args.workers != 1:  # so that one worker runs on a CLI without the flag too
            serve += ["--workers", str(args.workers)]
        app = start(serve, app_env, base / "app.log")
        wait_for(f"{app_url}/healthz", app, base / "app.log")
        at_start = tree_memory_mib(app.pid)
        meter = Meter(sim.pid, app.pid)
        direct, app_phase, direct_cpu, app_cpu = asyncio.run(bench(sim_url, app_url, args, meter))
        # Read before stopping: the figures of processes that exit go with them.
        at_end = tree_memory_mib(app.pid)
        ok = report(direct, app_phase, args, (at_start, at_end), (direct_cpu, app_cpu))
    finally:
        if app is not None:
            stop(app)
        stop(sim)
        if args.redis:
            print(f"deleted {clean_redis(prefix)} Redis key(s) under {prefix!r}")
        shutil.rmtree(base, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
