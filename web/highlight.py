"""A code block in a reply: highlighted on the server, with a language label and a copy button.

A fence names its language in its info string (```` ```python ````). A name that one of
Pygments' built-in lexers answers to is highlighted; any other name, or none, is shown plain.
Lexers are never guessed from the code (slow, and often wrong) and never looked up among plugins
(Pygments scans the installed packages' entry points for every unknown name: 60 ms each).

What is ours and what is the model's: the code and the language word come from the model; the
wrapper (label, button, classes) comes from here. The highlighted code is model-derived HTML, so
it passes nh3 with a policy of its own (only ``<span>`` with Pygments' ``hl-`` classes)
before it goes into the wrapper; the label is escaped text. web/render.py puts the block in only
after the reply's own HTML has passed its sanitiser, which keeps no ``hl-`` class, no button and
no ``div``: a model cannot produce what this module produces, not even through a bug in the
markdown parser.

The HTML depends only on the code and the info string, and is the same for an open fence (a
reply still being written) as for the closed one: the block keeps its place, label and button
while it grows. Highlighting costs far more than the rest of a render (bench/render_stream.py),
so blocks are cached by their code: while a reply streams and is re-rendered, only its open
block is highlighted again. A reply has a :class:`Budget` of HIGHLIGHT_BUDGET_CHARS characters
of highlighted code, spent block by block (up to a line end); code past it is plain. That bounds
what one render can cost and how large its HTML can grow (Pygments' HTML is 6-9 times the code,
27 times for code made of one-character tokens). The open block is always a reply's last, so it
finds the same budget at every re-render.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from html import escape
from typing import Any

import nh3
from markdown_it.common.utils import unescapeAll
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import LEXERS, get_lexer_by_name
from pygments.token import STANDARD_TYPES

logger = logging.getLogger(__name__)

CLASS_PREFIX = "hl-"
HIGHLIGHT_BUDGET_CHARS = 12_000
"""Per reply, roughly 300 lines; Pygments takes 1-4 µs a character: at most about 10-50 ms."""
LABEL_MAX_CHARS = 24
NO_LANGUAGE_LABEL = "text"
COPY_LABEL = "Copy code"
BLOCK_CACHE_SIZE = 64
"""Highlighted blocks kept: ~100 kB each at most for typical code, ~320 kB for hostile code."""

_KNOWN_LANGUAGES = frozenset(
    alias.lower()
    for _module, _name, aliases, _files, _types in LEXERS.values()
    for alias in aliases
)
_FORMATTER = HtmlFormatter(nowrap=True, classprefix=CLASS_PREFIX)
_CODE_CLASSES = {"span": {CLASS_PREFIX + short for short in STANDARD_TYPES.values() if short}}
"""What the highlighted code may keep: Pygments' own classes (a token type of a lexer's own
also carries its standard parent's class). A set, not a filter function: nh3 checks it in Rust,
which halves its share of highlighting (bench/render_stream.py)."""


def language_of(info: str) -> str:
    """The language word of a fence's info string, as the model wrote it (``"python"``)."""
    words = unescapeAll(info).split(maxsplit=1)
    return words[0] if words else ""


def is_known(language: str) -> bool:
    return language.lower() in _KNOWN_LANGUAGES


@dataclass
class Budget:
    """The characters of code a reply may still have highlighted; one for each render."""

    left: int = HIGHLIGHT_BUDGET_CHARS

    def take(self, code: str) -> int:
        """How much of `code` to highlight: all of it, or up to a line end within the budget."""
        taken = len(code) if len(code) <= self.left else code.rfind("\n", 0, self.left) + 1
        self.left -= taken
        return taken


def code_block(code: str, info: str, budget: Budget | None = None) -> str:
    """The HTML of one code block; `code` is the block's content, `info` its info string."""
    language = language_of(info)
    known = is_known(language)
    # The newline that ends the last line is the fence's, not the code's: without it an open
    # fence and the closed one render alike, and the copy button copies the code exactly.
    code = code.removesuffix("\n")
    if known:
        cut = (budget or Budget()).take(code)
        body = _highlighted(language.lower(), code[:cut]) if cut else ""
        body += escape(code[cut:], quote=False)
    else:
        body = escape(code, quote=False)
    label = _label(language)
    code_class = f' class="language-{escape(language.lower())}"' if known else ""
    return (
        '<div class="code-block" data-testid="code-block">'
        '<div class="code-head">'
        f'<span class="code-lang" data-testid="code-lang">{escape(label)}</span>'
        '<button type="button" class="button small ghost code-copy" data-testid="copy-code">'
        f"{COPY_LABEL}</button>"
        "</div>"
        f"<pre><code{code_class}>{body}</code></pre>"
        "</div>"
    )


def _label(language: str) -> str:
    if not language:
        return NO_LANGUAGE_LABEL
    if len(language) > LABEL_MAX_CHARS:
        return language[: LABEL_MAX_CHARS - 1] + "…"
    return language


@functools.lru_cache(maxsize=BLOCK_CACHE_SIZE)
def _highlighted(language: str, code: str) -> str:
    """`code` as sanitised highlighted HTML."""
    try:
        html = str(highlight(code, _lexer(language), _FORMATTER))
        if not code.endswith("\n"):
            html = html.removesuffix("\n")  # the formatter ends every line with one
    except Exception:
        # A lexer bug must not cost the user the reply: show the block plain, and say why in the log.
        logger.exception("highlighting %s code of %d characters failed", language, len(code))
        return escape(code, quote=False)
    return str(nh3.clean(html, tags={"span"}, attributes={}, allowed_classes=_CODE_CLASSES))


@functools.cache  # bounded: one entry per built-in lexer name at most
def _lexer(language: str) -> Any:
    # stripnl/ensurenl off: the code is shown and copied exactly as written.
    return get_lexer_by_name(language, stripnl=False, ensurenl=False)


def clear_cache() -> None:
    _highlighted.cache_clear()
