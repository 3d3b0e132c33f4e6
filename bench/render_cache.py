"""What a page view pays to show a long hostile reply: render_markdown on 32k characters.

    .venv/bin/python bench/render_cache.py [--repeat 5]

A reply is final once stored, yet every view of its page renders it again; web.render keeps the
HTML of recent replies (an LRU keyed by the text). Prints the first (uncached) render and the
median of the repeats (cached), for a few kinds of hostile markdown of the size limit.
"""

from __future__ import annotations

import argparse
import statistics
import time

from web import render

SIZE = 32_000
HOSTILE = {
    "nested brackets": "[" * (SIZE // 2) + "]" * (SIZE // 2),
    "emphasis runs": "*a _b " * (SIZE // 6),
    "link references": "[x]: http://example.com\n[x][x] " * (SIZE // 32),
    "backticks": "`a``b```c" * (SIZE // 9),
    "nested quotes": "> " * (SIZE // 2),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    for name, text in HOSTILE.items():
        render.clear_cache()
        started = time.perf_counter()
        render.render_markdown(text)
        first = time.perf_counter() - started
        again = []
        for _ in range(args.repeat):
            copy = "".join(text)  # a new str each view, as from a database row
            started = time.perf_counter()
            render.render_markdown(copy)
            again.append(time.perf_counter() - started)
        print(
            f"{name:16} {len(text):6} chars: first {first * 1000:8.1f} ms, "
            f"then {statistics.median(again) * 1000:8.2f} ms (median of {args.repeat})"
        )


if __name__ == "__main__":
    main()
