"""A raw loopback HTTP/1.1 server that answers with exactly the bytes a test gives it, then waits,
and notes when the client hangs up: for streams the simulator has no fault for, and to prove that
a cancelled consumer closes the upstream connection."""

from __future__ import annotations

import asyncio
import json
import re
from types import TracebackType
from typing import Any

_LENGTH = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)


def anthropic_frame(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def anthropic_text(text: str) -> bytes:
    return anthropic_frame(
        "content_block_delta",
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}},
    )


ANTHROPIC_START = anthropic_frame(
    "message_start",
    {
        "type": "message_start",
        "message": {
            "id": "msg_wall",
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": "claude-sonnet-4-6",
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 4, "output_tokens": 1},
        },
    },
) + anthropic_frame(
    "content_block_start",
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
)


def anthropic_end(stop_reason: str = "end_turn", *, stop: bool = True) -> bytes:
    frames = anthropic_frame("content_block_stop", {"type": "content_block_stop", "index": 0})
    frames += anthropic_frame(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": 2},
        },
    )
    if stop:
        frames += anthropic_frame("message_stop", {"type": "message_stop"})
    return frames


def openai_chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
    data = {
        "id": "chatcmpl-wall",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-5.5",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
    return f"data: {json.dumps(data)}\n\n".encode()


OPENAI_USAGE = (
    "data: "
    + json.dumps(
        {
            "id": "chatcmpl-wall",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": "gpt-5.5",
            "choices": [],
            "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6},
        }
    )
    + "\n\n"
).encode()
OPENAI_DONE = b"data: [DONE]\n\n"


def gemini_chunk(
    text: str | None = None,
    finish_reason: str | None = None,
    *,
    usage: bool = False,
    content: dict[str, Any] | None = None,
    **extra: Any,
) -> bytes:
    """One Gemini stream event (CRLF-separated, as Gemini sends them); no candidate at all when
    neither text, content nor a finish reason is given."""
    data: dict[str, Any] = {"responseId": "resp_wall", **extra}
    if text is not None or content is not None or finish_reason is not None:
        candidate: dict[str, Any] = {"index": 0}
        if content is not None or text is not None:
            candidate["content"] = content or {"parts": [{"text": text}], "role": "model"}
        if finish_reason is not None:
            candidate["finishReason"] = finish_reason
        data["candidates"] = [candidate]
    if usage:
        data["usageMetadata"] = {
            "promptTokenCount": 4,
            "candidatesTokenCount": 2,
            "totalTokenCount": 6,
        }
    return f"data: {json.dumps(data)}\r\n\r\n".encode()


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


class Wall:
    """``await Wall(body, end=...)``: one streamed response per request.

    ``end=True`` sends the terminating chunk after ``body`` (a clean end of the body); otherwise
    the server keeps the response open until the client hangs up (``hung_up`` is then set).
    """

    def __init__(self, body: bytes, *, end: bool = False) -> None:
        self.body = body
        self.end = end
        self.hung_up = asyncio.Event()
        self.heads: list[str] = []
        """Each request's line and headers, as received."""
        self.url = ""
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Wall:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.heads.append(head.decode("latin-1"))
            match = _LENGTH.search(head)
            await reader.readexactly(int(match.group(1)) if match else 0)
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"request-id: req_wall\r\nx-request-id: req_wall\r\n"
                b"transfer-encoding: chunked\r\n\r\n" + _chunk(self.body)
            )
            if self.end:
                writer.write(b"0\r\n\r\n")
            await writer.drain()
            while await reader.read(4096):
                pass
            self.hung_up.set()
        except (ConnectionError, asyncio.IncompleteReadError):
            self.hung_up.set()
        finally:
            writer.close()
