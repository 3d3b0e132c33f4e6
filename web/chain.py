"""The fallback chain: tiers tried in order, one typed event stream out (see :mod:`web.events`).

Policy, all of it here:

- Move to the next tier on: rate limit, quota exhausted, overload, other 5xx (and 408/409),
  connection errors, timeouts, in-stream error events, truncated or malformed streams.
- Timeouts are the chain's: each ``__anext__`` on a provider stream runs under a deadline
  (:mod:`web.watchdog`), the tier's ``first_token_s`` until the first text, then ``idle_s``;
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
- Each tier's request asks for at most the tier's ``max_output_tokens``. A reply that reaches it
  is complete but cut: Completed carries ``hit_length_limit=True`` (never a silent success, never
  a fallback: another tier would be cut the same way).
- The stream ends with exactly one Completed or Exhausted. Every try gets an AttemptRecord
  (in AttemptFailed, Completed and Exhausted, and through ``on_attempt``), including "ok" and
  "cancelled" when the consumer goes away (``aclose()`` or task cancellation, which also closes
  the upstream HTTP response).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, replace

from web import events
from web.events import AttemptFailed, AttemptRecord, ChainEvent, TierInfo, TierStarted
from web.outcome import TurnState, degraded_reason, final_message, timeout_error
from web.providers.anthropic_provider import AnthropicProvider
from web.providers.base import ChatRequest, ErrorKind, Provider, ProviderError, Usage
from web.providers.openai_provider import OpenAIProvider
from web.settings import ConfigError, Settings, TierConfig
from web.watchdog import Expired, Watchdog

__all__ = ["PROVIDERS", "SIM_PATHS", "Chain", "Tier", "degraded_reason"]

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
        """Every tier at the simulator (with a placeholder key) when ``sim_url`` is set, else at
        its provider (or the tier's ``base_url``) with its key; a missing key is a ConfigError."""
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
                # Real keys never travel to a simulator (it may be remote, over plain HTTP).
                base_url = settings.sim_url.rstrip("/") + SIM_PATHS[config.provider]
                key = SIM_PLACEHOLDER_KEY
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
        turn = TurnState(asyncio.get_running_loop(), self._deadline_s, on_attempt)
        restart = False
        for tier in self._tiers:
            if not turn.admits(tier.config):
                continue
            tier_request = replace(request, max_tokens=tier.config.max_output_tokens)
            retried = False
            while turn.remaining() > _MIN_ATTEMPT_S:
                attempt = turn.begin(tier.info, tier.config)
                # The attempt's stream is driven inline, not in a helper generator: every layer
                # of async generator costs each token a few microseconds. Creating it sends nothing.
                stream = tier.provider.stream(tier_request, tier.config.model)
                timeouts = tier.config.timeouts
                hard = min(turn.deadline, attempt.start + timeouts.total_s)
                watchdog = Watchdog(turn.loop)
                soft = 0.0
                try:
                    # Inside the try: a consumer that goes away right here still gets the
                    # attempt's "cancelled" record.
                    yield TierStarted(tier.info, attempt.number, restart=restart, retry=retried)
                    restart = False
                    while True:
                        wait = timeouts.idle_s if attempt.parts else timeouts.first_token_s
                        soft = turn.loop.time() + wait
                        try:
                            item = await watchdog.next(stream, min(soft, hard))
                        except StopAsyncIteration:
                            break
                        if isinstance(item, Usage):
                            attempt.usage = item
                        elif item.text:
                            if attempt.first_at is None:
                                attempt.first_at = turn.loop.time()
                            attempt.parts.append(item.text)
                            yield events.TextDelta(item.text)
                    if attempt.usage is None:
                        raise ProviderError(
                            ErrorKind.TRUNCATED, "the provider's stream ended without usage"
                        )
                except ProviderError as exc:
                    attempt.error = exc
                except Expired:
                    attempt.error = timeout_error(attempt, turn, soft, hard)
                except Exception as exc:  # a provider bug must not end the turn without an event
                    logger.exception("provider %s raised a non-ProviderError", tier.info.name)
                    attempt.error = ProviderError(
                        ErrorKind.SERVER_ERROR, f"unexpected {type(exc).__name__}: {exc}"
                    )
                except BaseException:  # the consumer went away: aclose() or cancellation
                    turn.cancelled(attempt)
                    raise
                finally:
                    watchdog.close()
                    aclose = getattr(stream, "aclose", None)
                    if aclose is not None:
                        await aclose()

                if attempt.error is None:
                    yield turn.completed(attempt)
                    return
                error = attempt.error
                yield AttemptFailed(turn.failed(attempt))
                restart = attempt.after_text
                if error.kind in _FINAL:
                    yield turn.exhausted(final_message(tier.config, error), error.kind)
                    return
                delay = None if retried or attempt.after_text else self._retry_delay(error)
                if delay is None or delay >= turn.remaining():
                    turn.exclude_after(tier.config, error)
                    break
                retried = True
                await asyncio.sleep(delay)
            if turn.remaining() <= _MIN_ATTEMPT_S:
                break
        yield turn.exhausted_summary(out_of_time=turn.remaining() <= _MIN_ATTEMPT_S)

    def _retry_delay(self, error: ProviderError) -> float | None:
        """Seconds to wait before the one same-tier retry, or None to move on at once."""
        kind, after = error.kind, error.retry_after
        if kind not in _TRANSIENT and not (kind is ErrorKind.RATE_LIMITED and after is not None):
            return None
        if after is not None and after > self._retry_after_cap_s:
            return None
        return (after or 0.0) + self._rng.uniform(0.0, self._backoff_s)
