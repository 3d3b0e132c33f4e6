"""The tier-mix chart: stacked bars per hour or day, laid out here and drawn as SVG by a template.

No script and no inline style (the CSP forbids both): geometry goes into SVG attributes, colours
come from classes in static/admin.css.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from web.db.tier_mix import FAILED_SERIES, TierMix

WIDTH = 480
HEIGHT = 160
LEFT = 28
BOTTOM = 18
TOP = 8
SERIES_CLASSES = 5
"""Tiers get classes series-0 .. series-4 in chain order (repeating); failures get series-failed."""


@dataclass(frozen=True)
class Segment:
    x: float
    y: float
    width: float
    height: float
    css: str
    title: str


@dataclass(frozen=True)
class Tick:
    x: float
    label: str


@dataclass(frozen=True)
class LegendItem:
    name: str
    css: str
    total: int


@dataclass(frozen=True)
class Chart:
    title: str
    width: int
    height: int
    baseline: float
    left: int
    top: int
    max_total: int
    segments: tuple[Segment, ...]
    ticks: tuple[Tick, ...]
    legend: tuple[LegendItem, ...]
    summary: str


def series_class(series: str, position: int) -> str:
    if series == FAILED_SERIES:
        return "series-failed"
    return f"series-{position % SERIES_CLASSES}"


def build_chart(mix: TierMix, title: str) -> Chart:
    hourly = mix.bucket == timedelta(hours=1)
    n = max(1, len(mix.buckets))
    plot_w = WIDTH - LEFT - 4
    plot_h = HEIGHT - TOP - BOTTOM
    step = plot_w / n
    bar_w = max(1.0, step * 0.78)
    max_total = max((b.total for b in mix.buckets), default=0)
    scale = plot_h / max_total if max_total else 0.0
    classes = {s: series_class(s, i) for i, s in enumerate(mix.series)}
    baseline = float(TOP + plot_h)

    segments: list[Segment] = []
    ticks: list[Tick] = []
    every = 6 if hourly else 1
    for i, bucket in enumerate(mix.buckets):
        x = LEFT + i * step + (step - bar_w) / 2
        y = baseline
        when = (
            f"{bucket.start:%a %H}:00-{(bucket.start + mix.bucket):%H}:00 UTC"
            if hourly
            else f"{bucket.start:%a %d %b} (UTC)"
        )
        for series, count in bucket.counts:
            if not count:
                continue
            h = count * scale
            y -= h
            segments.append(
                Segment(
                    round(x, 2),
                    round(y, 2),
                    round(bar_w, 2),
                    round(h, 2),
                    classes[series],
                    f"{when}: {series} {count}",
                )
            )
        if i % every == 0:
            label = f"{bucket.start:%H}h" if hourly else f"{bucket.start:%a}"
            ticks.append(Tick(round(LEFT + i * step + step / 2, 2), label))

    totals = {s: 0 for s in mix.series}
    for bucket in mix.buckets:
        for series, count in bucket.counts:
            totals[series] += count
    legend = tuple(LegendItem(s, classes[s], totals[s]) for s in mix.series)
    summary = ", ".join(f"{item.name} {item.total}" for item in legend) or "no turns"
    return Chart(
        title,
        WIDTH,
        HEIGHT,
        baseline,
        LEFT,
        TOP,
        max_total,
        tuple(segments),
        tuple(ticks),
        legend,
        f"{title}: {summary}.",
    )
