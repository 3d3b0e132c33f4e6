"""The log of model requests the simulator saw, so tests can count attempts per model."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class LoggedRequest:
    provider: str
    model: str | None
    stream: bool
    outcome: str
    """"ok", the fault kind that hit it, or "error:<status>" for the simulator's own errors."""
    status: int | None
    """HTTP status sent, or None when no response was sent (reset, hang)."""
    request_id: str
    fault_id: str | None = None
    api: str = "sync"
    """"sync" (a model request) or "batches" (the Message Batches endpoints, web.sim.batches)."""
    time: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class RequestLog:
    def __init__(self, maxlen: int = 100_000) -> None:
        self._entries: deque[LoggedRequest] = deque(maxlen=maxlen)
        self._lock = threading.Lock()

    def add(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._entries.append(entry)

    def entries(self, model: str | None = None) -> list[LoggedRequest]:
        with self._lock:
            return [e for e in self._entries if model is None or e.model == model]

    def count(self, model: str | None = None) -> int:
        return len(self.entries(model))

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
