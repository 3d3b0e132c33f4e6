"""Model output to HTML: markdown rendered as a reply streams and once it is final, then sanitised.

Model output is untrusted (it echoes whatever a prompt or a web page put in it). markdown-it-py
runs with ``html=False`` so raw HTML in the text stays text; nh3 then removes anything that is not
plain formatting, as a second line of defence. Images are never rendered: a remote image in a reply
would load by itself and could carry conversation text to another site, so it becomes a link the
user may choose to follow. Links are limited to http, https and mailto.

Code blocks are web/highlight.py's: highlighted, labelled, with a copy button. That HTML is not
the model's, so it must not pass through (or be allowed by) the sanitiser meant for the model's:
each block is rendered as a placeholder carrying this render's random nonce, the reply's HTML is
sanitised, and then the placeholders are replaced by the blocks. Text a model wrote cannot be a
placeholder (it cannot know the nonce), so it stays text.

A final reply never changes, but every view of its page shows it again, and hostile markdown of
the size limit takes a quarter of a second to render: the HTML of recent replies is kept, keyed by
their text (bench/render_cache.py measures it). A reply still being written is rendered again and
again as it grows (:func:`render_streaming`): to the same HTML, but never into that cache.
bench/render_stream.py measures what one such render costs.
"""

from __future__ import annotations

import functools
import re
import secrets
from collections.abc import Sequence
from html import escape

import nh3
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

from web import highlight

ALLOWED_TAGS = {
    "a", "b", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
    "i", "li", "ol", "p", "pre", "s", "span", "strong", "sub", "sup", "table", "tbody", "td",
    "th", "thead", "tr", "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "code": {"class"},
    "pre": {"class"},
    "span": {"class"},
    "ol": {"start"},
    "th": {"align"},
    "td": {"align"},
}
URL_SCHEMES = {"http", "https", "mailto"}
RENDER_CACHE_SIZE = 128
"""Replies whose HTML is kept: at most ~20 MB for replies of the 32k-character limit (~45 MB
if every one is hostile code highlighted to its budget, web.highlight.HIGHLIGHT_BUDGET_CHARS)."""


def _image_as_link(
    renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    alt = "".join(child.content for child in token.children or ()) or "image"
    return f'<a href="{escape(src)}">image: {escape(alt)}</a>'


_BLOCKS = "code_blocks"
"""The env key of a render's code blocks, by placeholder."""
_NONCE = "nonce"
_BUDGET = "highlight_budget"
_PLACEHOLDER = re.compile(r"\bcodeblock-[0-9a-f]{32}-\d+\b")


def _block_placeholder(
    renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    # A fence and an indented code block (no info string) alike.
    token = tokens[idx]
    blocks: dict[str, str] = env[_BLOCKS]
    if _NONCE not in env:  # made for the first block only: most renders have none (a syscall)
        env[_NONCE] = secrets.token_hex(16)
    placeholder = f"codeblock-{env[_NONCE]}-{len(blocks)}"
    blocks[placeholder] = highlight.code_block(token.content, token.info, env[_BUDGET])
    return f"{placeholder}\n"


def _make_markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    md.add_render_rule("image", _image_as_link)
    md.add_render_rule("fence", _block_placeholder)
    md.add_render_rule("code_block", _block_placeholder)
    return md


_MARKDOWN = _make_markdown()


def _keep_attribute(tag: str, attribute: str, value: str) -> str | None:
    # Classes come only from fence info strings ("language-python"); keep nothing else, so a
    # reply cannot borrow the page's own classes (and look like a badge, say).
    if attribute == "class":
        kept = [c for c in value.split() if c.startswith("language-")]
        return " ".join(kept) or None
    return value


_CLEANER = nh3.Cleaner(
    tags=ALLOWED_TAGS,
    clean_content_tags={"script", "style"},
    attributes=ALLOWED_ATTRIBUTES,
    attribute_filter=_keep_attribute,
    url_schemes=URL_SCHEMES,
    link_rel="noopener noreferrer nofollow",
)
"""Built once: ``nh3.clean(html, **options)`` builds its sanitiser again at every call, which was
four fifths of its cost (a short reply's HTML: 42 us a call, 8 us with this)."""


def sanitize(html: str) -> str:
    """Only formatting tags survive; no script, no event handler, no style, no image."""
    return _CLEANER.clean(html)


def render_markdown(text: str) -> str:
    """A final reply as safe HTML."""
    return _rendered(text)


def render_streaming(text: str) -> str:
    """The text so far of a reply still being written: the HTML :func:`render_markdown` gives
    for the same text (an open fence is an open code block), but kept out of its cache."""
    return _render(text)


@functools.lru_cache(maxsize=RENDER_CACHE_SIZE)
def _rendered(text: str) -> str:
    return _render(text)


def _render(text: str) -> str:
    blocks: dict[str, str] = {}
    env = {_BLOCKS: blocks, _BUDGET: highlight.Budget()}
    html = sanitize(_MARKDOWN.render(text, env))
    if not blocks:
        return html
    return _PLACEHOLDER.sub(lambda m: blocks.get(m.group(0), m.group(0)), html)


def clear_cache() -> None:
    _rendered.cache_clear()
    highlight.clear_cache()
