"""What the browser said went wrong: console errors, uncaught exceptions and CSP violations.

Every UI test records them (tests/ui/conftest.py) and fails at teardown on any it did not declare.
Chromium reports a CSP violation as a console error ("Applying inline style violates ..."), and
every request answered 4xx/5xx or cut off as "Failed to load resource: ..." at the request's URL:
that line is the network layer's, not a script's, so a test that provokes such an answer on
purpose declares exactly that one (status or network error, and path) with :meth:`allow_failed`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from playwright.sync_api import BrowserContext, ConsoleMessage, WebError


@dataclass(frozen=True)
class Logged:
    text: str
    url: str

    def __str__(self) -> str:
        return f"{self.text}  (at {self.url})" if self.url else self.text


@dataclass
class ConsoleErrors:
    """The errors one browser context logged, and the ones its test said to expect."""

    seen: list[Logged] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def watch(self, context: BrowserContext) -> None:
        context.on("console", self._on_console)
        context.on("weberror", self._on_web_error)

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.seen.append(Logged(message.text, str(message.location.get("url") or "")))

    def _on_web_error(self, error: WebError) -> None:
        self.seen.append(Logged(f"uncaught: {error.error}", error.page.url if error.page else ""))

    def allow(self, pattern: str) -> None:
        """Expect errors matching ``pattern`` (a regular expression searched in "text  (at url)")."""
        self.allowed.append(re.compile(pattern))

    def allow_failed(self, path: str, *, status: int | None = None) -> None:
        """Expect Chromium's "Failed to load resource" for requests to a URL ending in ``path``
        (a regular expression): answered with ``status``, or, without one, cut off or refused
        (net::ERR_...)."""
        reason = (
            rf"the server responded with a status of {status}\b"
            if status is not None
            else r"net::ERR_[A-Z_]+"
        )
        self.allow(rf"^Failed to load resource: {reason}.*\(at [^ ]*{path}\)$")

    def matching(self, pattern: str) -> list[Logged]:
        compiled = re.compile(pattern)
        return [logged for logged in self.seen if compiled.search(str(logged))]

    def unexpected(self) -> list[Logged]:
        return [
            logged
            for logged in self.seen
            if not any(pattern.search(str(logged)) for pattern in self.allowed)
        ]
