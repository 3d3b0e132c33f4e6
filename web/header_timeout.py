"""An HTTP/1.1 protocol that drops clients too slow to send a request's head.

uvicorn's h11 protocol bounds the size of a request head (``h11_max_incomplete_event_size``) and
closes a keep-alive connection idle for ``timeout_keep_alive`` after a response, but a connection
that sends half a request line, or a header a minute, is held open forever: a few hundred of those
(slowloris) use up the process's file descriptors. Here the head of every request (the first on a
connection, and each next one on a kept-alive connection) must arrive completely within
``header_timeout_s`` of its first byte, or of the connection being opened; otherwise the
connection is closed. The timer does not restart with each byte, so trickling does not help.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

DEFAULT_HEADER_TIMEOUT_S = 10.0
MAX_HEAD_BYTES = 16 * 1024
"""The longest request line plus headers (uvicorn's h11_max_incomplete_event_size)."""


class HeaderTimeoutProtocol(H11Protocol):
    header_timeout_s = DEFAULT_HEADER_TIMEOUT_S

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:
            self._arm()  # still waiting for a whole head: keep the timer that is running
        else:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout_s, self._too_slow)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _too_slow(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


def protocol_with_timeout(header_timeout_s: float) -> type[HeaderTimeoutProtocol]:
    """The protocol class for uvicorn.Config(http=...), with this header timeout."""
    return type(
        "HeaderTimeoutProtocol", (HeaderTimeoutProtocol,), {"header_timeout_s": header_timeout_s}
    )
