"""What a drill does to a tier, inside the app: a provider that fails the way the drill says.

The chain reads a drill turn's tiers through these (``Chain.run(drill=...)``), so the fault hits
the drill's own turns only unless the drill is instance-wide. Every kind but one is simulated in
the app and said so in the report; ``revoked_key`` is real: the tier's provider is built again
with an invalid key, and the provider itself (or the simulator) answers 401.

    overloaded, rate_limited, server_error   fail at once with that error kind
    revoked_key                              the provider, with an invalid key
    hang                                     no first token, ever (the first-token timeout cuts it)
    slow (delay_s)                           the first token that late, then the real reply
    cut (after_tokens)                       the real reply, broken after N tokens
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from web.providers.base import (
    ChatRequest,
    ErrorKind,
    Provider,
    ProviderError,
    StreamItem,
    TextDelta,
)


class FaultKind(StrEnum):
    OVERLOADED = "overloaded"
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    REVOKED_KEY = "revoked_key"
    HANG = "hang"
    SLOW = "slow"
    CUT = "cut"


_FAILS_AS = {
    FaultKind.OVERLOADED: (ErrorKind.OVERLOADED, 529),
    FaultKind.RATE_LIMITED: (ErrorKind.RATE_LIMITED, 429),
    FaultKind.SERVER_ERROR: (ErrorKind.SERVER_ERROR, 500),
}
MAX_DELAY_S = 600.0
MAX_AFTER_TOKENS = 100_000


@dataclass(frozen=True)
class DrillFault:
    tier: str
    kind: FaultKind
    delay_s: float = 0.0
    after_tokens: int = 0

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {"tier": self.tier, "kind": self.kind.value}
        if self.kind is FaultKind.SLOW:
            data["delay_s"] = self.delay_s
        if self.kind is FaultKind.CUT:
            data["after_tokens"] = self.after_tokens
        return data


class FaultyProvider:
    """``inner`` with the drill's fault in front of it."""

    def __init__(self, inner: Provider, fault: DrillFault) -> None:
        self._inner = inner
        self._fault = fault
        self.name = inner.name

    async def aclose(self) -> None:
        return None  # the inner provider is the chain's (or the drill's revoked one)

    def stream(self, request: ChatRequest, model: str) -> AsyncIterator[StreamItem]:
        return self._stream(request, model)

    async def _stream(self, request: ChatRequest, model: str) -> AsyncIterator[StreamItem]:
        fault = self._fault
        if fault.kind in _FAILS_AS:
            kind, status = _FAILS_AS[fault.kind]
            raise ProviderError(kind, f"drill: {fault.kind} (simulated in the app)", status=status)
        if fault.kind is FaultKind.HANG:
            await asyncio.Event().wait()  # until the chain's first-token timeout cancels it
        if fault.kind is FaultKind.SLOW:
            await asyncio.sleep(fault.delay_s)
        tokens = 0
        async for item in self._inner.stream(request, model):
            if fault.kind is FaultKind.CUT and isinstance(item, TextDelta):
                if tokens >= fault.after_tokens:
                    raise ProviderError(
                        ErrorKind.CONNECTION, "drill: stream cut (simulated in the app)"
                    )
                tokens += 1
            yield item


@dataclass
class DrillFaults:
    """One running drill's faults, by tier name, as the chain applies them to a turn."""

    drill_id: str
    faults: Mapping[str, DrillFault]
    instance_wide: bool
    revoked: dict[str, Provider] = field(default_factory=dict)
    """The tiers' providers built with an invalid key (``revoked_key``), made by web.drills."""

    def provider_for(self, tier: str, provider: Provider) -> Provider:
        fault = self.faults.get(tier)
        if fault is None:
            return provider
        if fault.kind is FaultKind.REVOKED_KEY:
            return self.revoked.get(tier, provider)
        return FaultyProvider(provider, fault)

    @property
    def quiet_breakers(self) -> bool:
        """A drill of its own turns must not open a breaker for everyone else."""
        return not self.instance_wide
