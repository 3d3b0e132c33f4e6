"""`understudy drill` as a user runs it (the console script, in a subprocess), its report, and an
admin's look at the drill through the server's API."""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from support.chat import CSRF

PROVIDER_KEYS = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY")
STARTED = re.compile(r"^drill (\S+) \(([0-9a-f]+)\) started on ")


def drill_command() -> list[str]:
    script = Path(sys.executable).parent / "understudy"
    if script.exists():
        return [str(script), "drill"]
    return [sys.executable, "-c", "from web.cli import main; main()", "drill"]


def drill_env(tmp_path: Path, chain: Path, password: str, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("UNDERSTUDY_") and k not in PROVIDER_KEYS
    }
    env.update(
        UNDERSTUDY_CHAIN=str(chain),
        UNDERSTUDY_ADMIN_PASSWORD=password,
        UNDERSTUDY_DATA_DIR=str(tmp_path / "data"),
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


def run_drill(
    args: Sequence[str], env: Mapping[str, str], cwd: Path, *, timeout: float
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*drill_command(), *args],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def report_of(report_dir: Path) -> tuple[dict[str, Any], str]:
    """The one report a drill wrote: (its JSON, its Markdown)."""
    (found,) = sorted(report_dir.glob("*.json"))
    return json.loads(found.read_text(encoding="utf-8")), found.with_suffix(".md").read_text()


class Lines:
    """A running drill's stderr, line by line, waited on with an upper bound."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stderr is not None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        stream = process.stderr

        def pump() -> None:
            for line in stream:
                self._lines.put(line.rstrip("\n"))
            self._lines.put(None)

        threading.Thread(target=pump, daemon=True).start()

    def wait_for(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self._lines.get(timeout=max(0.0, left))
            except queue.Empty:
                seen = "\n".join(self.seen)
                raise AssertionError(f"no line like {pattern.pattern!r}:\n{seen}") from None
            if line is None:
                raise AssertionError("the drill exited early:\n" + "\n".join(self.seen))
            self.seen.append(line)
            if match := pattern.search(line):
                return match


def drill_state(url: str, password: str, drill_id: str) -> dict[str, Any]:
    """What the server's drill API says of a drill (as a logged-in admin)."""
    with httpx.Client(base_url=url, timeout=10.0) as http:
        token = CSRF.search(http.get("/admin/login").text)
        assert token is not None
        login = http.post("/admin/login", data={"csrf_token": token.group(1), "password": password})
        assert login.status_code == 303, login.text
        reply = http.get(f"/admin/api/drills/{drill_id}")
        reply.raise_for_status()
        data: dict[str, Any] = reply.json()
        return data
