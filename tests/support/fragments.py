"""Read the HTML fragments the reply stream sends, the way the page applies them.

A tiny stand-in for the browser's DOM, for tests that follow the stream over plain HTTP: find an
element by id (its attributes and inner HTML, nesting and void elements understood), the text a
reader sees in some HTML, and :class:`ShownReply`, which applies the stream's events in order
("snapshot" replaces the reply, "update" swaps parts into it, "done" ends it) and remembers what
was on screen at each step.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from html.parser import HTMLParser

VOID = {"area", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


class _Finder(HTMLParser):
    def __init__(self, element_id: str) -> None:
        super().__init__(convert_charrefs=False)
        self.element_id = element_id
        self.attrs: dict[str, str] | None = None
        self.depth = 0
        self.start = self.end = -1
        self.inner_start = -1

    def _offset(self) -> int:
        line, column = self.getpos()
        return self._line_starts[line - 1] + column

    def feed_all(self, text: str) -> None:
        self._line_starts = [0]
        for line in text.splitlines(keepends=True):
            self._line_starts.append(self._line_starts[-1] + len(line))
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.end >= 0:
            return
        if self.attrs is None:
            found = dict((k, v or "") for k, v in attrs)
            if found.get("id") == self.element_id:
                self.attrs = found
                text = self.get_starttag_text() or ""
                self.inner_start = self._offset() + len(text)
                self.depth = 0 if tag in VOID else 1
                if tag in VOID:
                    self.end = self.inner_start
            return
        if tag not in VOID:
            self.depth += 1

    def handle_endtag(self, tag: str) -> None:
        if self.attrs is None or self.end >= 0 or tag in VOID:
            return
        self.depth -= 1
        if self.depth == 0:
            self.end = self._offset()


@dataclass(frozen=True)
class Element:
    attrs: dict[str, str]
    inner: str
    start: int
    """Where ``inner`` starts in the fragment, and ends."""
    end: int


def find(fragment: str, element_id: str) -> Element | None:
    finder = _Finder(element_id)
    finder.feed_all(fragment)
    if finder.attrs is None:
        return None
    end = finder.end if finder.end >= 0 else len(fragment)
    return Element(finder.attrs, fragment[finder.inner_start : end], finder.inner_start, end)


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "template" or (("aria-hidden", "true") in attrs and tag not in VOID):
            self.skip += 1

    def handle_endtag(self, tag: str) -> None:
        if self.skip and tag in ("template", "span", "div"):
            self.skip -= 1

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(data)


def text_of(fragment: str) -> str:
    """The words a reader sees (whitespace collapsed; templates and aria-hidden parts left out)."""
    parser = _Text()
    parser.feed(fragment)
    parser.close()
    return " ".join("".join(parser.parts).split())


def words(text: str) -> str:
    return " ".join(text.split())


@dataclass
class Screen:
    """What the reply showed after one event."""

    event: str
    tier: str
    badge: bool
    reason: str
    status: str
    body: str


@dataclass
class ShownReply:
    turn_id: str
    article: str = ""
    screens: list[Screen] = field(default_factory=list)

    def apply(self, event: str, data: str) -> None:
        reply_id = f"reply-{self.turn_id}"
        if event in ("snapshot", "done"):
            found = find(data, reply_id)
            assert found is not None, f"no reply in the {event} event: {data[:200]}"
            start = data.index(f'id="{reply_id}"')
            self.article = data[data.rindex("<", 0, start) :]
        elif event == "update":
            for part in ("status", "answer", "body"):
                new = find(data, f"{part}-{self.turn_id}")
                old = find(self.article, f"{part}-{self.turn_id}")
                if new is not None and old is not None:  # hx-swap-oob="innerHTML"
                    self.article = self.article[: old.start] + new.inner + self.article[old.end :]
        self.screens.append(self.screen(event))

    def screen(self, event: str) -> Screen:
        article = self.article
        head = find(article, f"reply-{self.turn_id}")
        assert head is not None
        status = find(article, f"status-{self.turn_id}")
        body = find(article, f"body-{self.turn_id}")
        reason = 'data-testid="degraded-reason">'
        reason_text = ""
        if reason in article:
            start = article.index(reason) + len(reason)
            reason_text = html.unescape(article[start : article.index("</span>", start)])
        return Screen(
            event=event,
            tier=head.attrs.get("data-tier", ""),
            badge='data-testid="tier-badge"' in article,
            reason=reason_text,
            status=text_of(status.inner) if status else "",
            body=text_of(body.inner) if body else "",
        )
