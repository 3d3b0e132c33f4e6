"""The SSE reader and retry-after parsing the adapters share."""

from __future__ import annotations

import email.utils
import time

import httpx2

from web.providers.wire import ServerEvent, SSEReader, http_timeout, retry_after
from web.settings import Timeouts


def test_events_split_across_chunks_and_crlf() -> None:
    reader = SSEReader()
    assert reader.feed(b"event: ping\r\ndata: {}\r") == []
    assert reader.feed(b"\n\r\ndata: a\nda") == [ServerEvent("ping", "{}")]
    assert reader.feed(b"ta: b\n\n: comment\nid: 7\ndata:c\n\n") == [
        ServerEvent(None, "a\nb"),
        ServerEvent(None, "c"),
    ]


def test_flush_returns_an_event_without_its_blank_line() -> None:
    reader = SSEReader()
    assert reader.feed(b"data: [DONE]") == []
    assert reader.flush() == [ServerEvent(None, "[DONE]")]
    assert reader.flush() == []


def test_an_event_line_without_data_is_not_an_event() -> None:
    assert SSEReader().feed(b"event: lonely\n\n") == []


def test_retry_after_forms() -> None:
    assert retry_after(None) is None
    assert retry_after({}) is None
    assert retry_after({"retry-after": "2"}) == 2.0
    assert retry_after({"retry-after": "0.5", "retry-after-ms": "250"}) == 0.25
    assert retry_after({"retry-after": "soon"}) is None
    assert retry_after({"retry-after": "-3"}) == 0.0
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    parsed = retry_after({"retry-after": later})
    assert parsed is not None and 28 <= parsed <= 31


def test_http_timeout_is_a_backstop_behind_the_chain() -> None:
    timeout = http_timeout(Timeouts(connect_s=2, first_token_s=10, idle_s=4, total_s=60))
    assert timeout == httpx2.Timeout(10, connect=2)
