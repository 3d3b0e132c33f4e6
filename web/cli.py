"""The `understudy` command: serve, sim, ask, turns, db."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

import click

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
def serve(
    host: str, port: int, proxy_headers: bool, forwarded_allow_ips: str | None, no_worker: bool
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
