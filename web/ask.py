"""`understudy ask "prompt"`: one prompt through the chain, the reply on stdout.

Plain mode streams the reply when stdout is a terminal; when it is a pipe or a file it prints only
the reply that completed, so scripts never get a partial reply from a tier that failed mid-way.
Notes about tiers (failures, the fallback that answered) go to stderr. ``--json`` prints every
chain event and every attempt record as one JSON line each, in the order they happened, and last
an outcome line. With no simulator URL and no API keys at
all, a simulated upstream starts in-process so the command works out of the box.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from typing import Any, TextIO

from web.chain import Chain
from web.events import (
    AttemptRecord,
    ChainEvent,
    Completed,
    Exhausted,
    TextDelta,
    TierStarted,
    event_to_json,
)
from web.lineup import LineUp
from web.providers.base import ChatMessage, ChatRequest
from web.redact import register_secrets
from web.settings import Settings
from web.status import AttemptOutcome


def run_ask(prompt: str, *, as_json: bool, system: str | None) -> int:
    settings = Settings.from_env()
    register_secrets(*settings.secrets())
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        # The notes below say what happened; per-request INFO logs would only repeat it.
        for name in ("web.chain", "httpx2", "httpx"):
            logging.getLogger(name).setLevel(logging.WARNING)
    return asyncio.run(ask(settings, prompt, as_json=as_json, system=system))


async def ask(
    settings: Settings,
    prompt: str,
    *,
    as_json: bool,
    system: str | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run one turn; 0 when a tier answered, 1 when the chain was exhausted."""
    out = out or sys.stdout
    err = err or sys.stderr
    sim = None
    if settings.sim_url is None and not settings.api_keys:
        from web.sim.server import SimServer

        sim = SimServer()
        await sim.start()
        keys = sorted({t.api_key_env for t in settings.tiers})
        print(
            f"understudy: no API keys set ({', '.join(keys)}); "
            f"answering from the built-in simulated upstream at {sim.url}",
            file=err,
        )
        settings = settings.with_sim(sim.url)
    left_out = LineUp.of(settings).left_out_line()
    if left_out:
        print(f"understudy: {left_out}", file=err)
    try:
        chain = Chain.from_settings(settings)
        try:
            request = ChatRequest(messages=(ChatMessage("user", prompt),), system=system)
            printer = _JsonPrinter(out) if as_json else _PlainPrinter(out, err)
            outcome: Completed | Exhausted | None = None
            attempts: list[AttemptRecord] = []

            def attempt_ended(record: AttemptRecord) -> None:
                attempts.append(record)
                printer.attempt(record)

            async for event in chain.run(request, on_attempt=attempt_ended):
                printer.event(event)
                if isinstance(event, Completed | Exhausted):
                    outcome = event
            printer.outcome(outcome, attempts)
            return 0 if isinstance(outcome, Completed) else 1
        finally:
            await chain.aclose()
    finally:
        if sim is not None:
            await sim.stop()


class _PlainPrinter:
    def __init__(self, out: TextIO, err: TextIO) -> None:
        self.out = out
        self.err = err
        self.live = out.isatty()
        self.shown = False

    def event(self, event: ChainEvent) -> None:
        if isinstance(event, TextDelta) and self.live:
            self.out.write(event.text)
            self.out.flush()
            self.shown = True
        elif isinstance(event, TierStarted) and event.restart and self.live and self.shown:
            self.out.write("\n")
            self._note(f"restarting the reply with {event.tier.label}")
        elif isinstance(event, Completed):
            if not self.live:
                self.out.write(event.text)
            self.out.write("\n")
            self.out.flush()
            if event.degraded_reason:
                badge = event.tier.badge or event.tier.label
                self._note(f"{badge}: {event.degraded_reason}")
            if event.hit_length_limit:
                self._note("the reply reached the model's length limit (max_output_tokens)")
        elif isinstance(event, Exhausted):
            if self.live and self.shown:
                self.out.write("\n")
            print(f"understudy: {event.message}", file=self.err)

    def attempt(self, record: AttemptRecord) -> None:
        if record.outcome is AttemptOutcome.FAILED:
            self._note(f"{record.tier.label} failed: {record.error_message}")

    def outcome(self, outcome: Completed | Exhausted | None, attempts: list[AttemptRecord]) -> None:
        self.err.flush()

    def _note(self, text: str) -> None:
        if self.live and self.shown:
            self.out.flush()
        print(f"[{text}]", file=self.err, flush=True)


class _JsonPrinter:
    def __init__(self, out: TextIO) -> None:
        self.out = out

    def event(self, event: ChainEvent) -> None:
        self._line(event_to_json(event))

    def attempt(self, record: AttemptRecord) -> None:
        self._line(event_to_json(record))

    def outcome(self, outcome: Completed | Exhausted | None, attempts: list[AttemptRecord]) -> None:
        self._line(outcome_json(outcome, attempts))

    def _line(self, data: dict[str, Any]) -> None:
        self.out.write(json.dumps(data) + "\n")
        self.out.flush()


def outcome_json(
    outcome: Completed | Exhausted | None, attempts: list[AttemptRecord]
) -> dict[str, Any]:
    """The last line of ``--json``: who answered, every attempt, timings."""
    done = outcome if isinstance(outcome, Completed) else None
    return {
        "type": "outcome",
        "ok": done is not None,
        "tier": done.tier.name if done else None,
        "model": done.tier.model if done else None,
        "degraded_reason": done.degraded_reason if done else None,
        "hit_length_limit": done.hit_length_limit if done else False,
        "message": outcome.message if isinstance(outcome, Exhausted) else None,
        "attempts": [event_to_json(r) for r in attempts],
        "ttft_s": done.ttft_s if done else None,
        "total_s": outcome.total_s if outcome else None,
    }
