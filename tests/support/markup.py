"""Reading rendered HTML the way a browser would: its elements and the text of its code blocks."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass(frozen=True)
class Element:
    tag: str
    attrs: dict[str, str]

    @property
    def classes(self) -> list[str]:
        return self.attrs.get("class", "").split()


@dataclass
class Markup:
    elements: list[Element] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)
    """The text of each ``<pre><code>``, as the copy button copies it (textContent)."""
    labels: list[str] = field(default_factory=list)


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.markup = Markup()
        self._stack: list[Element] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {name: value or "" for name, value in attrs})
        self.markup.elements.append(element)
        self._stack.append(element)
        if tag == "code" and len(self._stack) > 1 and self._stack[-2].tag == "pre":
            self.markup.codes.append("")
        if "code-lang" in element.classes:
            self.markup.labels.append("")

    def handle_endtag(self, tag: str) -> None:
        while self._stack:
            if self._stack.pop().tag == tag:
                break

    def handle_data(self, data: str) -> None:
        tags = [e.tag for e in self._stack]
        if "pre" in tags and "code" in tags:
            self.markup.codes[-1] += data
        if any("code-lang" in e.classes for e in self._stack):
            self.markup.labels[-1] += data


def read(html: str) -> Markup:
    reader = _Reader()
    reader.feed(html)
    reader.close()
    return reader.markup
