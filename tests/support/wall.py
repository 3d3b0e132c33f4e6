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
