"""Several processes' metrics in one test process, the way prometheus_client's own tests make
them: a directory set as PROMETHEUS_MULTIPROC_DIR, and a value class per simulated process that
writes under that process's pid (so each one has its own files, as a real process would)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from prometheus_client import values
from prometheus_client.parser import text_string_to_metric_families

import web.metrics
from web.metrics import Series
from web.metrics_shared import SharedSeries

DEAD_PID = 4_000_001
"""A pid no process has here (above the kernel's default limit): a process that died without
stopping, as far as the live gauges can tell."""


@dataclass
class Processes:
    path: Path
    monkeypatch: pytest.MonkeyPatch
    _classes: list[type] = field(default_factory=list)

    def become(self, pid: int) -> None:
        """From now on, metrics made here are process ``pid``'s: its own value files and its own
        series, as in a process of its own."""
        value_class = values.MultiProcessValue(lambda: pid)  # type: ignore[no-untyped-call]
        self._classes.append(value_class)
        self.monkeypatch.setattr(values, "ValueClass", value_class)
        self.monkeypatch.setattr(web.metrics, "PROCESS_SERIES", SharedSeries(lambda: Series(None)))

    def this_process(self) -> None:
        self.become(os.getpid())

    def another_running_process(self) -> None:
        """A process that runs (the live gauges of dead ones are dropped): this one's parent."""
        self.become(os.getppid())

    def files(self) -> list[str]:
        return sorted(p.name for p in self.path.iterdir())

    def close(self) -> None:
        for value_class in self._classes:
            value_class.close_all_files()  # type: ignore[attr-defined]


@pytest.fixture
def processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Processes]:
    """Multiprocess mode in ``tmp_path/metrics``; call ``become(pid)`` before making metrics."""
    path = tmp_path / "metrics"
    path.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(path))
    made = Processes(path, monkeypatch)
    try:
        yield made
    finally:
        made.close()


Figures = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Figures:
    """(sample name, labels) -> value; fails on a family that appears twice."""
    found: Figures = {}
    names: list[str] = []
    for family in text_string_to_metric_families(text):
        names.append(family.name)
        for s in family.samples:
            found[(s.name, frozenset(s.labels.items()))] = s.value
    assert len(names) == len(set(names)), f"a family appears twice: {sorted(names)}"
    return found
