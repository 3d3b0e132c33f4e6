"""Log lines that text from outside cannot forge.

Provider error messages, request paths and model output reach log calls as arguments; a newline in
one of them would start what looks like a new record ("...\\n2026-01-01 INFO forged"). The CLI
installs :class:`SafeFormatter` on its one handler (:func:`configure_logging`), so every logger is
covered: the formatted message has its control characters escaped (``\\n`` becomes the two
characters ``\\`` ``n``), and traceback or stack lines, the only text allowed to span lines, are
indented, so a line that starts at column 0 is always the start of a real record. Every line also
passes through web.redact, so a configured secret never reaches the log.
"""

from __future__ import annotations

import logging
import re
from types import TracebackType
from typing import TypeAlias

from web.redact import redact

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CONTINUATION = "    "
"""The prefix of every traceback and stack line."""

_ExcInfo: TypeAlias = (
    tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_one(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_control(text: str) -> str:
    """``text`` on one line: C0 and C1 control characters, DEL and the Unicode line and paragraph
    separators written as escapes."""
    return _CONTROL.sub(_escape_one, text)


def _indented(block: str) -> str:
    return "\n".join(CONTINUATION + escape_control(redact(line)) for line in block.split("\n"))


class SafeFormatter(logging.Formatter):
    """A formatter whose records stay one line each (see the module docstring)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        message = record.message  # the message with its args, set by Formatter.format
        record.message = escape_control(redact(message))
        try:
            return super().formatMessage(record)
        finally:
            record.message = message

    def formatException(self, ei: _ExcInfo) -> str:
        return _indented(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _indented(super().formatStack(stack_info))


def configure_logging(level: int) -> None:
    """The process's logging: one stderr handler with a :class:`SafeFormatter`."""
    handler = logging.StreamHandler()
    handler.setFormatter(SafeFormatter(FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
