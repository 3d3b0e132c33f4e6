"""Scrub credential-shaped text (API keys, bearer tokens, URL passwords) from messages.

Providers quote keys back in some errors ("Incorrect API key provided: sk-..."). Every provider
error passes through :func:`redact` when it is made (web.providers.base.ProviderError), and the
turn log applies it again before it stores error text, so no key reaches a log line or a table.
"""

from __future__ import annotations

import re

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


def redact(text: str) -> str:
    """``text`` with credential-shaped substrings replaced."""
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text
