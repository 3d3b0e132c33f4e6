"""What a user sees of a reply, read from the HTML the page shows and the stream sends.

The stream's events carry fragments that the page swaps in (web.routes.stream): "snapshot"
replaces the whole reply, "update" swaps its status line and body, "done" ends it. This module
reads them the way the page shows them: the reply's ``data-tier`` and ``data-state``, the badge
(``data-testid="tier-badge"``, its text and its tooltip), the sentence beside it
(``degraded-reason``), the error under a failed reply (``reply-error``), and whether any words of
the reply are on screen yet. A small tree builder on :mod:`html.parser`, so nesting and void
elements are understood and entities decoded like a browser does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

from web.status import ReplyState

from .expect import Shown

VOID = frozenset(
    {"area", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)
_STREAM = re.compile(r'sse-connect="(/c/[0-9a-f]+/turns/([0-9a-f]+)/stream)"')
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    def text(self) -> str:
        """The words a reader sees (whitespace collapsed; templates and hidden parts left out)."""
        parts: list[str] = []
        self._collect(parts)
        return " ".join("".join(parts).split())

    def _collect(self, parts: list[str]) -> None:
        for child in self.children:
            if isinstance(child, str):
                parts.append(child)
            elif child.tag != "template" and child.attrs.get("aria-hidden") != "true":
                child._collect(parts)

    def find(self, **wanted: str) -> Node | None:
        """The first element (depth first, this one included) whose attributes match;
        ``data_testid="x"`` stands for ``data-testid="x"``."""
        attrs = {k.replace("_", "-"): v for k, v in wanted.items()}
        stack: list[Node] = [self]
        while stack:
            node = stack.pop(0)
            if all(node.attrs.get(k) == v for k, v in attrs.items()):
                return node
            stack[0:0] = [c for c in node.children if isinstance(c, Node)]
        return None


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {})
        self.open: list[Node] = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.open[-1].children.append(node)
        if tag not in VOID:
            self.open.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.open[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.open) - 1, 0, -1):
            if self.open[depth].tag == tag:
                del self.open[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.open[-1].children.append(data)


def parse(fragment: str) -> Node:
    builder = _Builder()
    builder.feed(fragment)
    builder.close()
    return builder.root


@dataclass(frozen=True)
class Screen:
    """A reply at one moment: what it shows, and whether any of its words are on screen."""

    shown: Shown
    has_text: bool


def reply_in(fragment: str, turn_id: str) -> Screen | None:
    """The reply ``turn_id`` in a "snapshot" or "done" fragment (or a page); None if absent."""
    article = parse(fragment).find(id=f"reply-{turn_id}")
    if article is None:
        return None
    badge = article.find(data_testid="tier-badge")
    reason = article.find(data_testid="degraded-reason")
    error = article.find(data_testid="reply-error")
    body = article.find(id=f"body-{turn_id}")
    try:
        state = ReplyState(article.attrs.get("data-state", ""))
    except ValueError:
        state = ReplyState.STREAMING  # an unknown state: not ended, so never a match
    shown = Shown(
        tier=article.attrs.get("data-tier", ""),
        state=state,
        badge=badge.text() if badge is not None else None,
        title=badge.attrs.get("title") if badge is not None else None,
        reason=reason.text() if reason is not None else None,
        error=error.text() if error is not None else None,
    )
    return Screen(shown, has_text=body is not None and bool(body.text()))


def update_has_text(fragment: str, turn_id: str) -> bool:
    """An "update" fragment puts words of the reply on screen (its body has text)."""
    body = parse(fragment).find(id=f"body-{turn_id}")
    return body is not None and bool(body.text())


def stream_of(page: str) -> tuple[str, str] | None:
    """(stream path, turn id) of the last reply the page follows, if any."""
    found = _STREAM.findall(page)
    return found[-1] if found else None


def csrf_of(page: str) -> str | None:
    match = _CSRF.search(page)
    return match.group(1) if match else None
