"""web.logsafe: text from outside cannot forge a log line."""

from __future__ import annotations

import logging
import subprocess
import sys

from web.logsafe import FORMAT, SafeFormatter, escape_control

FORGED = "upstream said: boom\n2026-01-01 INFO forged"


def _record(msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError("bad\n2026-01-01 INFO forged too")
        except RuntimeError:
            exc_info = sys.exc_info()
    return logging.LogRecord("web.chain", logging.WARNING, __file__, 1, msg, args, exc_info)


def test_a_newline_in_the_message_does_not_start_a_new_line() -> None:
    line = SafeFormatter(FORMAT).format(_record(FORGED))
    assert "\n" not in line
    assert line.endswith("web.chain: upstream said: boom\\n2026-01-01 INFO forged")


def test_control_characters_in_the_args_are_escaped_too() -> None:
    line = SafeFormatter(FORMAT).format(
        _record("%s said: %s", "sonnet", "a\r\nb\x1b[2Jc\x00\u2028")
    )
    assert line.endswith("sonnet said: a\\r\\nb\\x1b[2Jc\\x00\\u2028")


def test_a_traceback_spans_lines_but_none_of_them_starts_at_column_0() -> None:
    text = SafeFormatter(FORMAT).format(_record(FORGED, exc=True))
    first, *rest = text.split("\n")
    assert "forged" in first and rest
    assert all(line.startswith("    ") for line in rest)
    assert any("RuntimeError: bad" in line for line in rest)


def test_escape_control_leaves_ordinary_text_alone() -> None:
    assert escape_control("plain text, ünïcode, and a \\ backslash") == (
        "plain text, ünïcode, and a \\ backslash"
    )


def test_the_cli_logging_set_up_escapes_every_logger() -> None:
    script = (
        "import logging\n"
        "from web.cli import main\n"
        "main.callback(verbose=False)\n"
        f"logging.getLogger('uvicorn.error').warning({FORGED!r})\n"
        "logging.getLogger('web.chain').error('tier failed: %s', 'x\\r\\n2026-01-01 INFO forged')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True
    )
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0].endswith("uvicorn.error: upstream said: boom\\n2026-01-01 INFO forged")
    assert lines[1].endswith("web.chain: tier failed: x\\r\\n2026-01-01 INFO forged")
