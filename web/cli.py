"""The `understudy` command: serve, sim, ask, turns, drill, db."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

import click

from web.drill.scenarios import NAMES as DRILL_SCENARIOS
from web.logsafe import configure_logging
from web.settings import ConfigError


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log at DEBUG level.")
def main(verbose: bool) -> None:
    """Understudy: a chat whose models have understudies."""
    configure_logging(logging.DEBUG if verbose else logging.INFO)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--proxy-headers",
    is_flag=True,
    help="Behind a reverse proxy: take the client address from X-Forwarded-For (and the scheme "
    "from X-Forwarded-Proto), only when the request comes from --forwarded-allow-ips.",
)
@click.option(
    "--forwarded-allow-ips",
    default=None,
    metavar="IPS",
    help="Comma-separated proxy addresses (or networks) trusted with --proxy-headers "
    "[default: 127.0.0.1,::1].",
)
@click.option(
    "--no-worker",
    is_flag=True,
    help="Do not run the deferral worker in this process (run `understudy worker` instead).",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Processes serving the port (more than one needs UNDERSTUDY_REDIS_URL).",
)
def serve(
    host: str,
    port: int,
    proxy_headers: bool,
    forwarded_allow_ips: str | None,
    no_worker: bool,
    workers: int,
) -> None:
    """Start the chat app (with the simulated upstream when no API keys are set)."""
    from web.server import serve as run_server

    if forwarded_allow_ips and not proxy_headers:
        raise click.UsageError("--forwarded-allow-ips only applies with --proxy-headers.")
    _run(
        lambda: run_server(
            host,
            port,
            proxy_headers=proxy_headers,
            forwarded_allow_ips=forwarded_allow_ips,
            run_worker=not no_worker,
            workers=workers,
        )
    )


@main.command()
def worker() -> None:
    """Run the deferral worker alone: submit queued messages, poll, land their replies."""
    from web.settings import Settings
    from web.worker_process import run_worker

    _run(lambda: run_worker(Settings.from_env()))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8100, show_default=True, type=int)
def sim(host: str, port: int) -> None:
    """Run the simulated upstream (Anthropic, OpenAI and Gemini wire formats, fault injection)."""
    from web.sim.server import run_sim

    _run(lambda: run_sim(host, port))


@main.command()
@click.argument("prompt")
@click.option("--json", "as_json", is_flag=True, help="Print the event stream as JSON lines.")
@click.option("--system", default=None, help="A system prompt.")
def ask(prompt: str, as_json: bool, system: str | None) -> None:
    """Run one prompt through the chain and stream the reply to stdout."""
    from web.ask import run_ask

    _run(lambda: run_ask(prompt, as_json=as_json, system=system))


@main.command()
@click.option("--degraded", is_flag=True, help="Only turns not answered by the primary.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("-n", "--limit", default=20, show_default=True, type=int)
def turns(degraded: bool, as_json: bool, limit: int) -> None:
    """List recent turns (in the spirit of `llm logs`)."""
    from web.db.turns_cli import run_turns

    _run(lambda: run_turns(degraded=degraded, as_json=as_json, limit=limit))


@main.command()
@click.option(
    "--target",
    metavar="URL",
    help="A running Understudy (staging) [default: the app "
    "on the simulator, started in this process].",
)
@click.option(
    "--scenario",
    required=True,
    type=click.Choice(DRILL_SCENARIOS),
    help="What goes wrong; quarterly runs the standard set, in order.",
)
@click.option(
    "--prompts",
    "prompt_count",
    default=10,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="How many messages to send.",
)
@click.option(
    "--prompt-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Your own prompts, one per paragraph [default: the shipped ones].",
)
@click.option("--concurrency", default=2, show_default=True, type=click.IntRange(1, 100))
@click.option(
    "--report-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the JSON and Markdown reports go [default: the data folder's drills/].",
)
@click.option(
    "--instance-wide",
    is_flag=True,
    help="The fault hits every turn on the instance, not only the drill's (staging).",
)
@click.option(
    "--ttft-p95",
    type=click.FloatRange(min=0, min_open=True),
    metavar="S",
    help="Override every tier's SLA: p95 seconds to the first token.",
)
@click.option(
    "--total-p95",
    type=click.FloatRange(min=0, min_open=True),
    metavar="S",
    help="Override every tier's SLA: p95 seconds to the whole reply.",
)
@click.option(
    "--max-errors",
    default=3,
    show_default=True,
    type=click.IntRange(0),
    help="Abort once more unforeseen user-visible errors than this were seen.",
)
@click.option(
    "--queue-timeout",
    default=300.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    metavar="S",
    help="How long a queued reply may take to land.",
)
@click.option(
    "--recovery-timeout",
    default=90.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    metavar="S",
    help="How soon the primary must answer again once the fault is removed.",
)
def drill(
    target: str | None,
    scenario: str,
    prompt_count: int,
    prompt_file: Path | None,
    concurrency: int,
    report_dir: Path | None,
    instance_wide: bool,
    ttft_p95: float | None,
    total_p95: float | None,
    max_errors: int,
    queue_timeout: float,
    recovery_timeout: float,
) -> None:
    """Prove the fallback: break a tier on purpose, send messages as users do, check what they
    see. Exit 0 when every hypothesis held, 1 when one did not, 2 when the drill could not run."""
    from web.drill.command import run_drill
    from web.drill.engine import DrillOptions

    options = DrillOptions(
        scenario=scenario,
        prompts=prompt_count,
        prompt_file=prompt_file,
        concurrency=concurrency,
        instance_wide=instance_wide,
        ttft_p95_s=ttft_p95,
        total_p95_s=total_p95,
        max_errors=max_errors,
        queue_timeout_s=queue_timeout,
        recovery_timeout_s=recovery_timeout,
    )
    _run(lambda: run_drill(options, target=target, report_dir=report_dir))


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command()
def upgrade() -> None:
    """Upgrade the database to the newest migration."""
    from web.db.migrate import run_upgrade

    _run(run_upgrade)


def _run(fn: Callable[[], int | None]) -> None:
    try:
        code = fn()
    except ConfigError as exc:
        click.echo(f"understudy: configuration error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(code or 0)


if __name__ == "__main__":
    main()
