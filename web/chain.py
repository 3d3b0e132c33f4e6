"""The fallback chain: tiers tried in order, one typed event stream out (see :mod:`web.events`).

Policy, all of it here:

- Move to the next tier on: rate limit, quota exhausted, overload, other 5xx (and 408/409),
  connection errors, timeouts, in-stream error events, truncated or malformed streams.
- Timeouts are the chain's: each ``__anext__`` on a provider stream runs under an asyncio
  timeout, the tier's ``first_token_s`` until the first text, then ``idle_s`` between texts;
  the attempt is also bounded by the tier's ``total_s`` and the turn by ``deadline_s``
  (``Settings.turn_deadline_s``). A hanging upstream is cut by the first-token timeout; nothing
  waits past the turn deadline, and no attempt starts after it.
- At most one same-tier retry per tier and turn, only before any text was shown and only for a
  transient error: overloaded, server error, connection error (after a full-jitter sleep,
  ``uniform(0, backoff_s)``), or rate limited with a retry-after; a retry-after is honoured when
  it is at most ``retry_after_cap_s`` (the sleep is retry-after plus the jitter) and means "move
  on at once" when longer. Quota exhausted, timeouts, truncated and malformed streams move on at
  once: waiting for them does not help, and a timed-out tier already cost its timeout.
- Do not move on for a bad request (it fails everywhere), an unknown model (404: a configuration
  error to fix) or a content-policy refusal (never retried, on this model or any other; the
  provider's reason is shown).
- Context too long: skip to the next tier whose ``context_window`` is larger than the failed
  tier's; if there is none, a clear error.
- 401/403: move on only to tiers that use another ``api_key_env``.
- A failure after text was shown moves to the next tier (never a same-tier retry); that tier's
  TierStarted has ``restart=True`` so consumers drop the partial text, and only the reply that
  completes is ever in Completed.
- The stream ends with exactly one Completed or Exhausted. Every try gets an AttemptRecord
  (in AttemptFailed, Completed and Exhausted, and through ``on_attempt``), including "ok" and
  "cancelled" when the consumer goes away (``aclose()`` or task cancellation, which also closes
  the upstream HTTP response).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, field

from web import events
from web.events import (
    AttemptFailed,
    AttemptRecord,
    ChainEvent,
    Completed,
    Exhausted,
    TierInfo,
    TierStarted,
)
from web.providers.anthropic_provider import AnthropicProvider
from web.providers.base import ChatRequest, ErrorKind, Provider, ProviderError, Usage
from web.providers.openai_provider import OpenAIProvider
from web.settings import ConfigError, Settings, TierConfig

logger = logging.getLogger(__name__)

SIM_PLACEHOLDER_KEY = "sim-placeholder-key"
SIM_PATHS = {"anthropic": "/anthropic", "openai": "/openai/v1"}
PROVIDERS: dict[str, Callable[..., Provider]] = {
    "anthropic": AnthropicProvider,
    "openai": OpenAIProvider,
}
_MIN_ATTEMPT_S = 0.01
"""Do not start an attempt with less time than this left before the turn deadline."""

_TRANSIENT = frozenset({ErrorKind.OVERLOADED, ErrorKind.SERVER_ERROR, ErrorKind.CONNECTION})
_FINAL = frozenset({ErrorKind.BAD_REQUEST, ErrorKind.NOT_FOUND, ErrorKind.CONTENT_POLICY})

_FAILED_AS = {
    ErrorKind.RATE_LIMITED: "was rate limited",
    ErrorKind.QUOTA_EXHAUSTED: "was out of quota",
    ErrorKind.OVERLOADED: "was overloaded",
    ErrorKind.SERVER_ERROR: "had a server error",
    ErrorKind.TIMEOUT: "timed out",
    ErrorKind.CONNECTION: "had a connection error",
    ErrorKind.TRUNCATED: "cut its reply off",
    ErrorKind.MALFORMED: "sent a garbled reply",
    ErrorKind.BAD_REQUEST: "rejected the request",
    ErrorKind.CONTEXT_TOO_LONG: "could not fit the conversation",
    ErrorKind.CONTENT_POLICY: "refused under its content policy",
    ErrorKind.AUTH: "rejected its API key",
    ErrorKind.NOT_FOUND: "did not know its model",
}
_PREFIX = re.compile(r"^(HTTP \d+|in-stream) \S+: ")


@dataclass(frozen=True)
class Tier:
    config: TierConfig
    info: TierInfo
    provider: Provider

    @classmethod
    def build(cls, config: TierConfig, index: int, provider: Provider) -> Tier:
        info = TierInfo(
            name=config.name,
            provider=config.provider,
            model=config.model,
            label=config.label,
            badge=config.badge,
            index=index,
        )
        return cls(config=config, info=info, provider=provider)


class Chain:
    def __init__(
        self,
        tiers: Sequence[Tier],
        *,
        deadline_s: float = 120.0,
        rng: random.Random | None = None,
        retry_after_cap_s: float = 2.0,
        backoff_s: float = 0.25,
    ) -> None:
        if not tiers:
            raise ValueError("a chain needs at least one tier")
        self._tiers = tuple(tiers)
        self._deadline_s = deadline_s
        self._rng = rng or random.Random()
        self._retry_after_cap_s = retry_after_cap_s
        self._backoff_s = backoff_s

    @classmethod
    def from_settings(cls, settings: Settings) -> Chain:
        """Every tier at the simulator when ``sim_url`` is set, else at its provider with its key."""
        if not settings.sim_url:
            for config in settings.tiers:
                if settings.key_for(config) is None:
                    raise ConfigError(
                        f"{config.api_key_env} is not set; tier {config.name!r} ({config.label}) "
                        f"needs it. Set {config.api_key_env}, or set UNDERSTUDY_SIM_URL to use "
                        "the simulated upstream."
                    )
        tiers = []
        for index, config in enumerate(settings.tiers):
            key = settings.key_for(config)
            base_url = config.base_url
            if settings.sim_url:
                base_url = settings.sim_url.rstrip("/") + SIM_PATHS[config.provider]
                key = key or SIM_PLACEHOLDER_KEY
            assert key is not None
            provider = PROVIDERS[config.provider](
                api_key=key, base_url=base_url, timeouts=config.timeouts
            )
            tiers.append(Tier.build(config, index, provider))
        return cls(tiers, deadline_s=settings.turn_deadline_s)

    @property
    def tiers(self) -> tuple[Tier, ...]:
        return self._tiers

    @property
    def deadline_s(self) -> float:
        return self._deadline_s

    async def aclose(self) -> None:
        for tier in self._tiers:
            await tier.provider.aclose()

    async def run(
        self,
        request: ChatRequest,
        *,
        on_attempt: Callable[[AttemptRecord], None] | None = None,
    ) -> AsyncGenerator[ChainEvent, None]:
        """One turn. Close it with ``aclose()`` (or ``contextlib.aclosing``) if you stop early."""
        turn = _Turn(asyncio.get_running_loop(), self._deadline_s, on_attempt)
        restart = False
        for tier in self._tiers:
            if not turn.admits(tier.config):
                continue
            retried = False
            while turn.remaining() > _MIN_ATTEMPT_S:
                attempt = turn.begin(tier)
                yield TierStarted(tier.info, attempt.number, restart=restart, retry=retried)
                restart = False
                async with contextlib.aclosing(self._stream(attempt, request, turn)) as deltas:
                    async for delta in deltas:
                        yield delta
                if attempt.error is None:
                    yield turn.completed(attempt)
                    return
                error = attempt.error
                yield AttemptFailed(turn.failed(attempt))
                restart = attempt.after_text
                if error.kind in _FINAL:
                    yield turn.exhausted(_final_message(tier, error), error.kind)
                    return
                delay = None if retried or attempt.after_text else self._retry_delay(error)
                if delay is None or delay >= turn.remaining():
                    turn.exclude_after(tier.config, error)
                    break
                retried = True
                await asyncio.sleep(delay)
            if turn.remaining() <= _MIN_ATTEMPT_S:
                break
        yield turn.exhausted_summary()

    def _retry_delay(self, error: ProviderError) -> float | None:
        """Seconds to wait before the one same-tier retry, or None to move on at once."""
        kind, after = error.kind, error.retry_after
        if kind not in _TRANSIENT and not (kind is ErrorKind.RATE_LIMITED and after is not None):
            return None
        if after is not None and after > self._retry_after_cap_s:
            return None
        return (after or 0.0) + self._rng.uniform(0.0, self._backoff_s)

    async def _stream(
        self, attempt: _Attempt, request: ChatRequest, turn: _Turn
    ) -> AsyncGenerator[events.TextDelta, None]:
        """Drive one provider stream under the chain's timeouts; the outcome lands on ``attempt``."""
        loop = turn.loop
        timeouts = attempt.tier.config.timeouts
        hard = min(turn.deadline, attempt.start + timeouts.total_s)
        stream = attempt.tier.provider.stream(request, attempt.tier.config.model)
        try:
            while True:
                soft = loop.time() + (timeouts.idle_s if attempt.parts else timeouts.first_token_s)
                try:
                    async with asyncio.timeout_at(min(soft, hard)) as timer:
                        item = await anext(stream)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    if not timer.expired():
                        raise
                    attempt.error = _timeout_error(attempt, turn, soft, hard)
                    return
                if isinstance(item, Usage):
                    attempt.usage = item
                elif item.text:
                    if attempt.first_at is None:
                        attempt.first_at = loop.time()
                    attempt.parts.append(item.text)
                    yield events.TextDelta(item.text)
            if attempt.usage is None:
                attempt.error = ProviderError(
                    ErrorKind.TRUNCATED, "the provider's stream ended without usage"
                )
        except ProviderError as exc:
            attempt.error = exc
        except Exception as exc:  # a provider bug must not end the turn without an event
            logger.exception("provider %s raised a non-ProviderError", attempt.tier.info.name)
            attempt.error = ProviderError(
                ErrorKind.SERVER_ERROR, f"unexpected {type(exc).__name__}: {exc}"
            )
        except BaseException:
            turn.cancelled(attempt)
            raise
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()


def degraded_reason(tier: TierInfo, attempts: Sequence[AttemptRecord]) -> str | None:
    """None for the primary; else which model answered and why the ones before it did not."""
    if tier.is_primary:
        return None
    failed = [r for r in attempts if r.outcome == "failed" and r.tier.name != tier.name]
    reasons = [
        f"{r.tier.label} was unavailable ({r.error_kind.phrase})"
        for r in _last_per_tier(failed)
        if r.error_kind is not None
    ]
    if not reasons:
        return f"Reply generated by {tier.label}."
    return f"Reply generated by {tier.label} because {_join(reasons)}."


def _last_per_tier(records: Sequence[AttemptRecord]) -> list[AttemptRecord]:
    """A retried tier is named once, with its last error; in chain order."""
    last = {r.tier.name: r for r in records}
    return sorted(last.values(), key=lambda r: r.tier.index)


def _join(parts: Sequence[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return f"{', '.join(parts[:-1])} and {parts[-1]}"


def _reason(error: ProviderError) -> str:
    """The provider's own words, without our 'HTTP 400 type:' prefix."""
    return _PREFIX.sub("", error.message).rstrip(".")


def _final_message(tier: Tier, error: ProviderError) -> str:
    label = tier.config.label
    if error.kind is ErrorKind.CONTENT_POLICY:
        return (
            f"{label} declined this request under its content policy: {_reason(error)}. "
            "It was not sent to another model."
        )
    if error.kind is ErrorKind.NOT_FOUND:
        return (
            f"{label} is misconfigured: the provider does not know the model "
            f"{tier.config.model!r} ({_reason(error)}). Fix the model id in the chain file."
        )
    return f"The request was rejected by {label}: {_reason(error)}. Change it and try again."


def _timeout_error(attempt: _Attempt, turn: _Turn, soft: float, hard: float) -> ProviderError:
    """Say which limit fired: first token or idle (soft), or the tier's total or the turn's."""
    timeouts = attempt.tier.config.timeouts
    if soft <= hard and attempt.parts:
        message = f"no text for {timeouts.idle_s:g} s (idle timeout)"
    elif soft <= hard:
        message = f"no first token within {timeouts.first_token_s:g} s"
    elif hard >= turn.deadline:
        message = f"the turn deadline ({turn.deadline_s:g} s) passed"
    else:
        message = f"the tier's total time limit ({timeouts.total_s:g} s) passed"
    return ProviderError(ErrorKind.TIMEOUT, message)


@dataclass(eq=False)
class _Attempt:
    tier: Tier
    number: int
    start: float
    """Loop time."""
    started_at: float
    """Unix time."""
    parts: list[str] = field(default_factory=list)
    first_at: float | None = None
    usage: Usage | None = None
    error: ProviderError | None = None

    @property
    def after_text(self) -> bool:
        return bool(self.parts)


class _Turn:
    """The bookkeeping of one run: clock, records, and which tiers are still worth trying."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        deadline_s: float,
        on_attempt: Callable[[AttemptRecord], None] | None,
    ) -> None:
        self.loop = loop
        self.start = loop.time()
        self.deadline_s = deadline_s
        self.deadline = self.start + deadline_s
        self.records: list[AttemptRecord] = []
        self._on_attempt = on_attempt
        self._excluded_keys: set[str] = set()
        self._window_above: int | None = None
        self._last_error: ProviderError | None = None

    def remaining(self) -> float:
        return self.deadline - self.loop.time()

    def admits(self, config: TierConfig) -> bool:
        if config.api_key_env in self._excluded_keys:
            return False
        if self._window_above is None:
            return True
        return config.context_window is not None and config.context_window > self._window_above

    def exclude_after(self, config: TierConfig, error: ProviderError) -> None:
        if error.kind is ErrorKind.AUTH:
            self._excluded_keys.add(config.api_key_env)
        elif error.kind is ErrorKind.CONTEXT_TOO_LONG:
            window = config.context_window or 0
            self._window_above = max(self._window_above or 0, window)

    def begin(self, tier: Tier) -> _Attempt:
        return _Attempt(tier, len(self.records) + 1, self.loop.time(), time.time())

    def _add(self, attempt: _Attempt, outcome: str, error: ProviderError | None) -> AttemptRecord:
        now = self.loop.time()
        record = AttemptRecord(
            tier=attempt.tier.info,
            attempt=attempt.number,
            started_at=attempt.started_at,
            elapsed_s=now - attempt.start,
            ttft_s=None if attempt.first_at is None else attempt.first_at - attempt.start,
            outcome=outcome,
            error_kind=error.kind if error else None,
            error_message=error.message if error else None,
            status=error.status if error else None,
            request_id=(
                error.request_id if error else attempt.usage.request_id if attempt.usage else None
            ),
            retry_after=error.retry_after if error else None,
            after_text=attempt.after_text and outcome != "ok",
        )
        self.records.append(record)
        if self._on_attempt is not None:
            self._on_attempt(record)
        return record

    def completed(self, attempt: _Attempt) -> Completed:
        self._add(attempt, "ok", None)
        usage = attempt.usage
        tier = attempt.tier.info
        attempts = tuple(self.records)
        return Completed(
            tier=tier,
            text="".join(attempt.parts),
            input_tokens=usage.input_tokens if usage else None,
            output_tokens=usage.output_tokens if usage else None,
            ttft_s=None if attempt.first_at is None else attempt.first_at - self.start,
            total_s=self.loop.time() - self.start,
            attempts=attempts,
            degraded_reason=degraded_reason(tier, attempts),
        )

    def failed(self, attempt: _Attempt) -> AttemptRecord:
        error = attempt.error
        assert error is not None
        self._last_error = error
        logger.info(
            "tier %s attempt %d failed: %s (status %s, request id %s, after text %s)",
            attempt.tier.info.name,
            attempt.number,
            error.message,
            error.status,
            error.request_id,
            attempt.after_text,
        )
        return self._add(attempt, "failed", error)

    def cancelled(self, attempt: _Attempt) -> None:
        self._add(attempt, "cancelled", None)

    def exhausted(self, message: str, kind: ErrorKind | None) -> Exhausted:
        return Exhausted(
            message=message,
            attempts=tuple(self.records),
            total_s=self.loop.time() - self.start,
            final_kind=kind,
        )

    def exhausted_summary(self) -> Exhausted:
        last = self._last_error
        kind = last.kind if last else None
        out_of_time = self.remaining() <= _MIN_ATTEMPT_S
        if not out_of_time and kind is ErrorKind.CONTEXT_TOO_LONG:
            window = self._window_above
            size = f" (the largest that failed holds {window:,} tokens)" if window else ""
            return self.exhausted(
                "This conversation is too long for every model's context window"
                f"{size}. Start a new conversation or shorten your message.",
                kind,
            )
        failures = [
            f"{r.tier.label} {_FAILED_AS[r.error_kind]}"
            for r in _last_per_tier([r for r in self.records if r.error_kind is not None])
            if r.error_kind is not None
        ]
        opening = (
            f"No model answered within {self.deadline_s:g} s"
            if out_of_time
            else "No model could answer"
        )
        message = f"{opening}: {_join(failures)}." if failures else f"{opening}."
        if self._excluded_keys:
            message += f" Check {' and '.join(sorted(self._excluded_keys))}."
        else:
            message += " Try again in a moment."
        return self.exhausted(message, kind)
