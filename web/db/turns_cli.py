"""`understudy turns`: the latest turns in the terminal, oldest first so the newest is at the bottom.

In the spirit of `llm logs`: each turn shows who answered, why a lower tier did if one did, every
attempt, and the start of the prompt and reply. ``--json`` prints one JSON object per line.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

import click

from web.db.logged_turns import AttemptView, LoggedTurn, first_messages, recent_turns, replies
from web.db.migrate import current_revision, safe_url
from web.db.session import make_engine, make_sessionmaker, read_scope

SNIPPET_CHARS = 100


def run_turns(*, degraded: bool, as_json: bool, limit: int) -> int:
    from web.settings import database_url_from_env

    url = database_url_from_env()
    if current_revision(url) is None:
        click.echo(
            f"understudy: {safe_url(url)} has no turn log yet. "
            "Start the app (`understudy serve`) or run `understudy db upgrade`.",
            err=True,
        )
        return 1
    rows, prompts, texts = asyncio.run(_load(url, degraded=degraded, limit=max(1, limit)))
    if not rows and not as_json:
        click.echo("No degraded or failed turns yet." if degraded else "No turns yet.")
    for row in reversed(rows):
        prompt, reply = prompts.get(row.id, ""), texts.get(row.id, "")
        if as_json:
            click.echo(json.dumps(turn_json(row, prompt, reply), ensure_ascii=False))
        else:
            click.echo(turn_text(row, prompt, reply))
    return 0


async def _load(
    url: str, *, degraded: bool, limit: int
) -> tuple[tuple[LoggedTurn, ...], dict[str, str], dict[str, str]]:
    engine = make_engine(url)
    try:
        async with read_scope(make_sessionmaker(engine)) as session:
            rows = await recent_turns(session, limit=limit, degraded_only=degraded)
            ids = [r.id for r in rows]
            return rows, await first_messages(session, ids), await replies(session, ids)
    finally:
        await engine.dispose()


def turn_json(row: LoggedTurn, prompt: str, reply: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "conversation_id": row.conversation_id,
        "started_at": _iso(row.started_at),
        "finished_at": _iso(row.finished_at),
        "status": row.status,
        "tier": row.tier,
        "provider": row.provider,
        "model": row.model,
        "degraded_reason": row.degraded_reason,
        "error_message": row.error_message,
        "ttft_ms": _round(row.ttft_ms),
        "total_ms": _round(row.total_ms),
        "input_tokens": row.input_tokens,
        "output_tokens": row.output_tokens,
        "attempts": [_attempt_json(a) for a in row.attempts],
        "prompt": prompt,
        "reply": reply,
    }


def _attempt_json(a: AttemptView) -> dict[str, Any]:
    return {
        "seq": a.seq,
        "tier": a.tier,
        "provider": a.provider,
        "model": a.model,
        "started_at": _iso(a.started_at),
        "elapsed_ms": _round(a.elapsed_ms),
        "ttft_ms": _round(a.ttft_ms),
        "outcome": a.outcome,
        "error_kind": a.error_kind,
        "error_message": a.error_message,
        "http_status": a.http_status,
        "request_id": a.request_id,
        "retry_after_s": a.retry_after_s,
        "after_text": a.after_text,
    }


def turn_text(row: LoggedTurn, prompt: str, reply: str) -> str:
    who = f"{row.tier} ({row.model})" if row.tier else "no tier"
    tokens = (
        f"  tokens {row.input_tokens}->{row.output_tokens}"
        if row.input_tokens is not None or row.output_tokens is not None
        else ""
    )
    head = (
        f"{row.started_at:%Y-%m-%d %H:%M:%S} UTC  {row.id}  {row.status}  {who}"
        f"  ttft {format_ms(row.ttft_ms)}  total {format_ms(row.total_ms)}{tokens}"
        f"  attempts {row.attempt_count}"
    )
    lines = [click.style(head, bold=True)]
    if row.degraded_reason:
        lines.append(f"  why:      {row.degraded_reason}")
    if row.error_message:
        lines.append(f"  error:    {row.error_message}")
    if row.attempts:
        lines.append("  attempts: " + " | ".join(_attempt_text(a) for a in row.attempts))
    lines.append(f"  prompt:   {_snippet(prompt)}")
    lines.append(f"  reply:    {_snippet(reply)}")
    return "\n".join(lines) + "\n"


def _attempt_text(a: AttemptView) -> str:
    what = a.failure.split(": ", 1)[1] if a.failure else a.outcome
    return f"{a.seq} {a.tier} {what} ({format_ms(a.elapsed_ms)})"


def format_ms(ms: float | None) -> str:
    if ms is None:
        return "-"
    return f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.2f} s"


def _snippet(text: str) -> str:
    flat = " ".join(text.split())
    if not flat:
        return "(empty)"
    return flat if len(flat) <= SNIPPET_CHARS else flat[: SNIPPET_CHARS - 1] + "…"


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _round(ms: float | None) -> float | None:
    return None if ms is None else round(ms, 1)
