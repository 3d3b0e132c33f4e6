"""The simulator as a process of its own (`understudy sim`), so that it outlives any server it
answers, and its control API (faults, model profiles, batches) over HTTP."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from conftest import free_port, understudy_command

from support.waiting import wait_until


class Sim:
    """The simulator's control API, talked to directly."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=10)

    def set_fault(self, model: str, kind: str, **params: Any) -> None:
        self.http.post("/faults", json={"model": model, "kind": kind, **params}).raise_for_status()

    def clear_faults(self) -> None:
        self.http.delete("/faults").raise_for_status()

    def set_profile(self, model: str, **fields: Any) -> None:
        self.http.post("/models", json={"model": model, **fields}).raise_for_status()

    def batches(self) -> list[dict[str, Any]]:
        reply = self.http.get(
            "/anthropic/v1/messages/batches",
            params={"limit": 100},
            headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
        )
        reply.raise_for_status()
        data: list[dict[str, Any]] = reply.json()["data"]
        return data

    def answers(self) -> bool:
        try:
            return self.http.get("/faults").status_code == 200
        except httpx.TransportError:
            return False


@contextlib.contextmanager
def running_sim(folder: Path) -> Iterator[Sim]:
    """`understudy sim` on a free port, logging to ``folder/sim.log``; stopped on exit."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNDERSTUDY_")}
    with (folder / "sim.log").open("wb") as log:
        process = subprocess.Popen(
            [*understudy_command(), "sim", "--port", str(port)], stdout=log, stderr=log, env=env
        )
    sim = Sim(f"http://127.0.0.1:{port}")
    try:
        wait_until(sim.answers, "the simulator to start")
        yield sim
    finally:
        sim.http.close()
        process.terminate()
        process.wait(10)
