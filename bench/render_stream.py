"""What one re-render of a streaming reply costs, to choose how often to re-render it.

    .venv/bin/python bench/render_stream.py [--repeat 21]

While a reply is written the server renders its text so far again (web.render.render_streaming)
every interval and replaces the reply's HTML. For replies of ~2k, ~8k and ~32k characters of
typical model markdown (headings, prose, lists, inline code, 1-3 fenced blocks of this
repository's own code), prints the median CPU time of one render:

    prose      plain paragraphs of the same size: the in-run baseline (no code, nothing cached)
    cold       the typical reply with no code block cached: a final reply's first render
    tick       the typical reply cut inside its last code block, the earlier blocks cached
               and the open one new at each render: what most re-renders while code streams cost
    final      the whole typical reply after its streaming renders: the blocks are cached

with ratios against the prose baseline, then how much of the cold render is highlighting
(web.highlight, Pygments and the nh3 pass over its output), and what re-rendering every
100 / 150 / 200 ms costs one streaming reply in CPU at the tick figure.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from markdown_it.token import Token

from web import highlight, render
from web.sim.replies import reply_text

ROOT = Path(__file__).resolve().parent.parent
SIZES = (2_000, 8_000, 32_000)
CODE = (  # (language, file): real code of the kind models write, one file for each block
    ("python", ROOT / "web" / "chain.py"),
    ("javascript", ROOT / "static" / "app.js"),
    ("css", ROOT / "static" / "app.css"),
)
BLOCKS_FOR_SIZE = {2_000: 1, 8_000: 2, 32_000: 3}
CODE_SHARE = 0.35
"""Of the characters of a typical reply, about this share is in code blocks."""
INTERVALS_MS = (100, 150, 200)
MAX_REPEAT = 64


@dataclass(frozen=True)
class Reply:
    text: str
    open_cuts: list[str]
    """Prefixes of the text that end inside its last code block, each a little longer."""


@dataclass(frozen=True)
class Row:
    chars: int
    prose_ms: float
    cold_ms: float
    tick_ms: float
    final_ms: float
    highlight_ms: float


def _prose(size: int, seed: str) -> str:
    paragraphs: list[str] = []
    while sum(len(p) + 2 for p in paragraphs) < size:
        sentences = reply_text("bench", f"{seed}{len(paragraphs)}", 70).split(". ", 1)[-1]
        paragraphs.append(sentences)
    return "\n\n".join(paragraphs)[:size].rsplit(" ", 1)[0] + "."


def _code(path: Path, chars: int, skip: int) -> str:
    lines = path.read_text().splitlines()[skip:]
    taken: list[str] = []
    while lines and sum(len(line) + 1 for line in taken) < chars:
        taken.append(lines.pop(0))
    return "\n".join(taken)


def _typical(size: int) -> Reply:
    blocks = BLOCKS_FOR_SIZE[size]
    code_chars = int(size * CODE_SHARE / blocks)
    prose_chars = int(size * (1 - CODE_SHARE) / (blocks + 1))
    parts: list[str] = ["## What changes\n"]
    fences: list[str] = []
    for index in range(blocks):
        language, path = CODE[index]
        prose = _prose(prose_chars // 2, f"typical{size}-{index}")
        items = _prose(prose_chars // 2, f"list{size}-{index}").split(". ")
        parts.append(f"{prose}\n\nThe **main points**, with `{language}` in mind:\n")
        parts.append("\n".join(f"- {item.strip()}" for item in items if item.strip()) + "\n")
        fence = f"```{language}\n{_code(path, code_chars, skip=20)}\n```\n"
        fences.append(fence)
        parts.append(fence)
    parts.append(_prose(prose_chars, f"end{size}"))
    text = "\n".join(parts)
    start = text.rindex(fences[-1])
    middle, end = start + len(fences[-1]) // 2, start + len(fences[-1]) - len("```\n")
    cuts = [text[: middle + (end - middle) * i // MAX_REPEAT] for i in range(MAX_REPEAT)]
    return Reply(text=text, open_cuts=cuts)


def _ms(run: Callable[[], object]) -> float:
    # CPU time, not wall time: a render is all CPU, and on a shared machine the wall clock also
    # counts the time other processes had the core.
    started = time.process_time()
    run()
    return (time.process_time() - started) * 1000


def _highlight_all(fences: list[Token]) -> list[str]:
    budget = highlight.Budget()  # one reply's
    return [highlight.code_block(t.content, t.info, budget) for t in fences]


def _measure(size: int, repeat: int) -> Row:
    """Each round times every figure once, so drift on a shared machine hits them all alike."""
    reply = _typical(size)
    prose = _prose(len(reply.text), f"baseline{size}")
    fences = [t for t in render._MARKDOWN.parse(reply.text) if t.type == "fence"]
    times: dict[str, list[float]] = {"prose": [], "cold": [], "tick": [], "final": [], "lit": []}
    for i in range(repeat):
        times["prose"].append(_ms(lambda: render.render_streaming(prose)))
        highlight.clear_cache()
        times["cold"].append(_ms(lambda: render.render_streaming(reply.text)))
        highlight.clear_cache()
        times["lit"].append(_ms(partial(_highlight_all, fences)))
        highlight.clear_cache()
        render.render_streaming(reply.open_cuts[i])  # as the last tick left the earlier blocks
        times["tick"].append(_ms(partial(render.render_streaming, reply.open_cuts[i + 1])))
        render.render_streaming(reply.text)
        times["final"].append(_ms(lambda: render.render_streaming(reply.text)))
    median = {name: statistics.median(values) for name, values in times.items()}
    return Row(
        len(reply.text), median["prose"], median["cold"], median["tick"], median["final"],
        median["lit"],
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=21)
    args = parser.parse_args()
    repeat = max(1, min(args.repeat, MAX_REPEAT - 1))
    print(f"CPU ms, median of {repeat} rounds; ratios against plain prose of the same size\n")
    header = f"{'size':>6} {'prose':>9} {'cold':>17} {'tick':>17} {'final':>17}  highlighting"
    print(header)
    print("-" * len(header))
    rows = [_measure(size, repeat) for size in SIZES]
    for row in rows:
        base = row.prose_ms
        print(
            f"{row.chars:6} {base:6.2f} ms"
            f" {row.cold_ms:7.2f} ms x{row.cold_ms / base:5.1f}"
            f" {row.tick_ms:7.2f} ms x{row.tick_ms / base:5.1f}"
            f" {row.final_ms:7.2f} ms x{row.final_ms / base:5.1f}"
            f"  {row.highlight_ms:6.2f} ms ({row.highlight_ms / row.cold_ms:4.0%} of cold)"
        )
    print("\nCPU of one streaming reply re-rendered at the tick figure, by interval:")
    for row in rows:
        shares = ", ".join(f"{ms} ms: {row.tick_ms / ms:5.1%}" for ms in INTERVALS_MS)
        print(f"  {row.chars:6} characters  {shares}")
    render.clear_cache()


if __name__ == "__main__":
    main()
