"""`understudy drill`: settings, the app to drill, the run, the report files and the exit code.

Exit codes: 0 when every hypothesis held, 1 when one did not (a check failed, an abort, a failed
recovery), 2 when the drill could not run (no target, a refused login, another drill running,
an interruption before the verdict). Progress goes to stderr, a line per event and per reply;
the report's paths are the last lines.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from web.redact import register_secrets
from web.settings import ConfigError, Settings

from . import engine
from .engine import DrillOptions, Target
from .prompts import PromptFileError, load_prompts, take
from .report import DrillResult, quarterly_json, quarterly_markdown, to_json, to_markdown, write
from .scenarios import QUARTERLY

QUIET_LOGGERS = {
    "web": logging.ERROR,
    "alembic": logging.WARNING,
    "uvicorn": logging.WARNING,
    "httpx": logging.WARNING,
    "httpx2": logging.WARNING,
}
"""The in-process app's own logs (every degraded turn is a warning there) would bury the
progress lines; -v brings them back."""


def run_drill(
    options: DrillOptions,
    *,
    target: str | None,
    report_dir: Path | None,
    err: TextIO | None = None,
) -> int:
    err = err or sys.stderr

    def say(line: str) -> None:
        print(line, file=err, flush=True)

    settings = Settings.from_env()
    register_secrets(*settings.secrets())
    try:
        prompts = take(load_prompts(options.prompt_file), options.prompts)
    except PromptFileError as exc:
        say(f"understudy drill: {exc}")
        return 2
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        for name, level in QUIET_LOGGERS.items():
            logging.getLogger(name).setLevel(level)
    app = None
    if target is None:
        from .inprocess import InProcessApp

        try:
            app = InProcessApp.start(settings)
        except RuntimeError as exc:  # it said why in its log
            say(f"understudy drill: {exc}")
            return 2
        assert app.settings.admin_password is not None
        where = Target(app.url, app.settings.admin_password, in_process=True)
        say(f"understudy drill: no --target, drilling the app on the simulator at {app.url}")
    elif settings.admin_password is None:
        raise ConfigError(
            "UNDERSTUDY_ADMIN_PASSWORD is not set: set it to the target's admin password "
            "(the drill logs in to its /admin API)."
        )
    else:
        where = Target(target.rstrip("/"), settings.admin_password, in_process=False)
    results: list[DrillResult] = []
    interrupted = False
    try:
        asyncio.run(engine.run(settings, where, options, prompts, results, say))
    except (KeyboardInterrupt, asyncio.CancelledError):
        interrupted = True
        say("understudy drill: interrupted; the drill was ended, its faults no longer apply")
    finally:
        if app is not None:
            app.stop()
    folder = report_dir or settings.data_dir / "drills"
    if results:
        paths = _write(folder, options.scenario, results)
        say("report: " + ", ".join(str(p) for p in paths))
    for result in results:
        if result.problem:
            say(f"understudy drill: {result.scenario} could not run: {result.problem}")
    return exit_code(results, interrupted=interrupted)


def exit_code(results: list[DrillResult], *, interrupted: bool) -> int:
    if interrupted or not results:
        return 2
    if any(r.problem is None and r.verdict == "fail" for r in results):
        return 1
    if any(r.problem for r in results):
        return 2
    return 0


def _write(folder: Path, scenario: str, results: list[DrillResult]) -> tuple[Path, Path]:
    stamp = datetime.fromtimestamp(results[0].started_at, UTC).strftime("%Y%m%dT%H%M%SZ")
    if scenario == QUARTERLY:
        return write(
            folder, f"{stamp}-{QUARTERLY}", quarterly_json(results), quarterly_markdown(results)
        )
    (result,) = results
    return write(folder, f"{stamp}-{result.scenario}", to_json(result), to_markdown(result))
