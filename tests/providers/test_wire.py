"""The SSE reader, retry-after parsing, JSON parsing and error normalising the adapters share."""

from __future__ import annotations

import email.utils
import time

import anthropic
import httpx2
import openai
import pytest

from web.providers.anthropic_provider import ERRORS as ANTHROPIC_ERRORS
from web.providers.base import ErrorKind, ProviderError
from web.providers.openai_provider import _ERRORS as OPENAI_ERRORS
from web.providers.wire import (
    ServerEvent,
    SSEReader,
    http_timeout,
    normalise,
    parse_json,
    retry_after,
)
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


def test_parse_json_names_what_was_not_an_object() -> None:
    assert parse_json('{"a": 1}', "req_1", "chunk") == {"a": 1}
    with pytest.raises(ProviderError, match=r"invalid JSON in chunk") as bad:
        parse_json("{nope", "req_1", "chunk")
    assert (bad.value.kind, bad.value.request_id) == (ErrorKind.MALFORMED, "req_1")
    with pytest.raises(ProviderError, match=r"event is not an object"):
        parse_json("[1, 2]", None, "event")


REQUEST = httpx2.Request("POST", "http://127.0.0.1/v1/messages")


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (anthropic.APITimeoutError(REQUEST), ErrorKind.TIMEOUT),
        (anthropic.APIConnectionError(request=REQUEST), ErrorKind.CONNECTION),
        (openai.APITimeoutError(REQUEST), ErrorKind.TIMEOUT),
        (openai.APIConnectionError(request=REQUEST), ErrorKind.CONNECTION),
        (httpx2.ReadTimeout("slow"), ErrorKind.TIMEOUT),
        (httpx2.RemoteProtocolError("peer closed"), ErrorKind.CONNECTION),
        (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad"), ErrorKind.MALFORMED),
    ],
)
def test_normalise_maps_sdk_and_transport_errors(exc: Exception, kind: ErrorKind) -> None:
    errors = ANTHROPIC_ERRORS if type(exc).__module__.startswith("anthropic") else OPENAI_ERRORS
    error = normalise(exc, "req_9", errors)
    assert error is not None and error.kind is kind


def test_normalise_leaves_other_exceptions_alone() -> None:
    assert normalise(ValueError("a bug"), None, ANTHROPIC_ERRORS) is None
    assert normalise(KeyError("a bug"), None, OPENAI_ERRORS) is None
