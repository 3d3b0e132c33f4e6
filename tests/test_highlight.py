"""One code block: highlighted when its language is known, plain otherwise, copied exactly."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from web import highlight
from web.highlight import (
    COPY_LABEL,
    HIGHLIGHT_BUDGET_CHARS,
    NO_LANGUAGE_LABEL,
    Budget,
    code_block,
)

from support.markup import read


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    highlight.clear_cache()


def test_a_known_language_is_highlighted_and_labelled() -> None:
    html = code_block('def greet(name):\n    return f"Hi {name}"  # done\n', "python")
    markup = read(html)
    assert '<span class="hl-k">def</span>' in html
    assert '<span class="hl-nf">greet</span>' in html
    assert '<span class="hl-c1"># done</span>' in html
    assert markup.labels == ["python"]
    code = next(e for e in markup.elements if e.tag == "code")
    assert code.classes == ["language-python"]
    button = next(e for e in markup.elements if e.tag == "button")
    assert button.attrs["type"] == "button" and button.attrs["data-testid"] == "copy-code"
    assert COPY_LABEL in html


def test_the_label_is_the_language_as_written() -> None:
    assert read(code_block("SELECT 1", "SQL")).labels == ["SQL"]
    assert '<span class="hl-k">SELECT</span>' in code_block("SELECT 1", "SQL")
    assert read(code_block("x", "")).labels == [NO_LANGUAGE_LABEL]
    assert read(code_block("x", "js {.numberLines} title=x")).labels == ["js"]
    (label,) = read(code_block("x", "a" * 200)).labels
    assert len(label) == highlight.LABEL_MAX_CHARS and label.endswith("…")


@pytest.mark.parametrize("info", ["", "nosuchlanguage", "pyhton", "{.python}", "😀"])
def test_an_unknown_or_missing_language_is_shown_plain(
    info: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_lookup(language: str) -> Any:
        raise AssertionError(f"looked up a lexer for {language!r}")  # no guessing, no plugins

    monkeypatch.setattr(highlight, "_lexer", no_lookup)
    html = code_block("def f():\n    return 1 < 2\n", info)
    markup = read(html)
    assert "<span" not in html.split("<pre>", 1)[1]
    assert markup.codes == ["def f():\n    return 1 < 2"]
    code = next(e for e in markup.elements if e.tag == "code")
    assert code.classes == []


CODES = [
    "print('hi')",
    'x = "<b>&amp;</b>"  # <script>alert(1)</script>\n',
    "\n\nleading and trailing blank lines\n\n\n",
    "\tindented\twith tabs  \n    and spaces   ",
    "unterminated = '''string\nthat goes on",
    "ünïcödé → 😀 ✓ \u00a0 nbsp",
    "",
]


@pytest.mark.parametrize("language", ["python", "javascript", "bash", "html", "text", "unknown"])
@pytest.mark.parametrize("code", CODES)
def test_the_code_element_holds_exactly_the_code(language: str, code: str) -> None:
    # The fence's content ends with the newline of its last line; that newline is not the code's.
    assert read(code_block(code + "\n", language)).codes == [code]
    if not code.endswith("\n"):
        assert read(code_block(code, language)).codes == [code]  # an open fence, mid-line


def test_an_open_fence_renders_like_the_closed_one() -> None:
    code = "def f(x):\n    return x\n"
    assert code_block(code, "python") == code_block(code.removesuffix("\n"), "python")


LINE = "value = compute(1, 2)  # a line of python\n"


def _highlighted_lines(html: str) -> int:
    return html.count('<span class="hl-n">value</span>')


def test_a_long_block_is_highlighted_up_to_a_line_end_then_plain() -> None:
    code = LINE * (2 * HIGHLIGHT_BUDGET_CHARS // len(LINE))
    html = code_block(code, "python")
    assert read(html).codes == [code.removesuffix("\n")]
    assert _highlighted_lines(html) == HIGHLIGHT_BUDGET_CHARS // len(LINE)
    assert html.count("value = compute") == code.count(LINE) - _highlighted_lines(html)


def test_a_reply_shares_one_budget_among_its_blocks() -> None:
    budget = Budget()
    lines = HIGHLIGHT_BUDGET_CHARS // len(LINE)
    first = code_block(LINE * (lines - 10), "python", budget)
    plain = code_block(LINE * 100, "unknown", budget)  # costs nothing
    second = code_block(LINE * 100, "python", budget)
    third = code_block(LINE * 100, "python", budget)
    assert _highlighted_lines(first) == lines - 10
    assert _highlighted_lines(plain) == 0
    assert _highlighted_lines(second) == 10 and second.count("value = compute") == 90
    assert _highlighted_lines(third) == 0
    assert read(third).codes == [(LINE * 100).removesuffix("\n")]


def test_a_growing_block_keeps_the_colours_it_had() -> None:
    """An open fence grows at the end; what was highlighted stays highlighted past the budget."""
    lines = HIGHLIGHT_BUDGET_CHARS // len(LINE)
    before = code_block(LINE * lines, "python")
    after = code_block(LINE * (lines + 50), "python")
    assert after.startswith(before.removesuffix("</code></pre></div>"))


def test_highlighted_html_passes_its_own_sanitiser(monkeypatch: pytest.MonkeyPatch) -> None:
    # Defence in depth: whatever the highlighter returned, only spans with its classes survive.
    def rogue(code: str, lexer: Any, formatter: Any) -> str:
        return (
            '<span class="hl-k tier-badge" onclick="x()">def</span><img src=x onerror=alert(1)>'
            '<button class="code-copy">b</button><script>bad()</script><a href="https://e.x">a</a>'
        )

    monkeypatch.setattr(highlight, "highlight", rogue)
    html = code_block("def", "python")
    body = html.split("<pre>", 1)[1]
    assert '<span class="hl-k">def</span>' in body
    for bad in ("tier-badge", "onclick", "<img", "<button", "<script", "bad()", "<a "):
        assert bad not in body
    assert html.count("<button") == 1  # ours


def test_a_lexer_failure_shows_the_block_plain_and_logs_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(code: str, lexer: Any, formatter: Any) -> str:
        raise RuntimeError("lexer bug")

    monkeypatch.setattr(highlight, "highlight", broken)
    with caplog.at_level(logging.ERROR, logger="web.highlight"):
        html = code_block("x < 1\n", "python")
    assert read(html).codes == ["x < 1"]
    assert "highlighting python code of 5 characters failed" in caplog.text


def test_a_block_is_highlighted_once_while_its_reply_is_rendered_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    real = highlight.highlight

    def counting(code: str, lexer: Any, formatter: Any) -> str:
        calls.append(code)
        return str(real(code, lexer, formatter))

    monkeypatch.setattr(highlight, "highlight", counting)
    first = code_block("def f():\n    pass\n", "python")
    for _ in range(3):
        assert code_block("".join("def f():\n    pass\n"), "python") == first
    assert len(calls) == 1
