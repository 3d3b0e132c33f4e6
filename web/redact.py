"""Scrub credentials from messages: the configured secrets by value, and anything credential-shaped.

Providers quote keys back in some errors ("Incorrect API key provided: sk-..."). Every provider
error passes through :func:`redact` when it is made (web.providers.base.ProviderError), the turn
log applies it again before it stores error text, and the log formatter (web.logsafe) applies it
to every log line, so no key reaches a log line or a table.

Shapes alone miss a key of a new or unknown format, so the app registers the secrets it was given
at start (:func:`register_secrets`: the API keys, the admin password, the session signing key);
their exact values, and a key's body without its ``sk-``/``sk-ant-`` prefix, are scrubbed
wherever they appear. Values shorter than MIN_SECRET_CHARS are not registered: they would match
ordinary words.
"""

from __future__ import annotations

import re
import threading

MIN_SECRET_CHARS = 8
KEY_PREFIXES = ("sk-ant-", "sk-proj-", "sk-")
"""Longest first: a key's body is what follows the first prefix that matches."""
REDACTED = "[redacted]"

_SECRET_PATTERNS = (
    # Anthropic (sk-ant-...), OpenAI (sk-..., sk-proj-...) and look-alike keys.
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{6,}"), "[redacted key]"),
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/\-]{8,}=*"), r"\1[redacted]"),
    (
        re.compile(r"(?i)\b((?:x-)?api[_-]?key[\"']?\s*[:=]\s*[\"']?)(?!\[redacted)[^\s\"',;}]+"),
        r"\1[redacted]",
    ),
    (re.compile(r"(://[^/\s:@]+:)[^@\s/]+@"), r"\1***@"),
)

_lock = threading.Lock()
_secrets: set[str] = set()
_known: re.Pattern[str] | None = None


def register_secrets(*values: str | None) -> None:
    """Scrub these values (and key bodies without their prefix) from every later redact()."""
    global _known
    added = set()
    for value in values:
        if not value:
            continue
        added.add(value)
        for prefix in KEY_PREFIXES:
            if value.startswith(prefix):
                added.add(value[len(prefix) :])
                break
    added = {v for v in added if len(v) >= MIN_SECRET_CHARS}
    with _lock:
        if added <= _secrets:
            return
        _secrets.update(added)
        # Longest first, so a whole key is replaced before its body could match inside it.
        ordered = sorted(_secrets, key=len, reverse=True)
        _known = re.compile("|".join(re.escape(v) for v in ordered))


def forget_secrets() -> None:
    """Drop every registered secret (for tests)."""
    global _known
    with _lock:
        _secrets.clear()
        _known = None


def redact(text: str) -> str:
    """``text`` with the registered secrets and credential-shaped substrings replaced."""
    known = _known
    if known is not None:
        text = known.sub(REDACTED, text)
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text
