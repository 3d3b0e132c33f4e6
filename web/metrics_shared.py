"""Prometheus' multiprocess mode: the metrics of all of an app's processes, summed at a scrape.

With PROMETHEUS_MULTIPROC_DIR set (Settings.metrics_dir; `understudy serve --workers N` sets it
for its workers), prometheus_client keeps every counter, histogram and gauge value in a file of
that directory named by kind and pid, and a scrape answered by any process reads them all
(MultiProcessCollector): counters and histograms are summed over every process that ever wrote
(one that died still counted what it counted), and ``understudy_live_turns`` is a ``livesum``
gauge, summed over the processes alive: a process that stops removes its file
(:meth:`SharedSeries.release`), and the file of one that died without stopping (kill -9, a
crash) is removed by the next scrape (:func:`forget_dead`). That check asks the kernel whether
the pid runs, so the directory must be private to the processes of one machine (as the one
`serve --workers N` makes is).

prometheus_client picks its value class when it is imported: the variable must be in the
environment before the process starts, or the metrics stay in memory and the sum would silently
miss this process (:func:`check_multiprocess` refuses to start then).

One process may hold several apps (the tests make many): they all write the same series, so
their figures add up in this process's files as if they were one app. The series are made once
per process (:class:`SharedSeries`), not once per app, because two sets of metric objects on one
file would each write their own total over the other's.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

from prometheus_client import values
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from web.settings import ConfigError

S = TypeVar("S")

_LIVE_FILE = re.compile(r"gauge_live[a-z]+_(\d+)\.db")
"""prometheus_client's file of the live* gauges of one process (what mark_process_dead removes)."""


def check_multiprocess(path: Path) -> None:
    """Refuse to start when prometheus_client was imported without the variable."""
    if not getattr(values.ValueClass, "_multiprocess", False):
        raise ConfigError(
            f"PROMETHEUS_MULTIPROC_DIR={str(path)!r} was set after the metrics library was "
            "loaded, so this process's metrics would not be shared. Set it in the environment "
            "before the process starts."
        )


def files_collector(path: Path) -> MultiProcessCollector:
    """Every process's series in ``path``, merged (what a scrape renders); the live gauges of
    processes that died first forgotten."""
    forget_dead(path)
    return MultiProcessCollector(None, path=str(path))  # type: ignore[no-untyped-call]


def forget_dead(path: Path) -> None:
    """Remove the live gauges' files of processes that no longer run (their counters stay)."""
    for file in path.glob("gauge_live*.db"):
        match = _LIVE_FILE.fullmatch(file.name)
        if match is not None and not _runs(int(match.group(1))):
            # Two scrapes at once may both find it: the second has nothing left to do.
            with contextlib.suppress(FileNotFoundError):
                file.unlink()


def _runs(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: nothing is sent, the kernel only checks the pid
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it runs, as another user
    return True


class SharedSeries(Generic[S]):
    """The one set of series (``make()``'s) of this process, for every app in it; counted out
    as apps stop, and this process's live gauges removed from the directory when the last one
    does. (prometheus_client writes to one directory per process: the variable's.)"""

    def __init__(self, make: Callable[[], S]) -> None:
        self._make = make
        self._lock = threading.Lock()
        self._series: S | None = None
        self._users = 0

    def acquire(self, path: Path) -> S:
        check_multiprocess(path)
        with self._lock:
            if self._series is None:
                self._series = self._make()
            self._users += 1
            return self._series

    def release(self, path: Path) -> None:
        with self._lock:
            if self._users == 0:
                return
            self._users -= 1
            if self._users:
                return
            self._series = None
            # The live gauges' file goes, so the live turns stop counting this process; the
            # counters' files stay: what this process counted stays in the totals.
            mark_process_dead(os.getpid(), str(path))  # type: ignore[no-untyped-call]
            # And prometheus_client forgets its open files, so an app made later in this
            # process writes to new ones, not to the removed file.
            close = getattr(values.ValueClass, "close_all_files", None)
            if close is not None:
                close()
