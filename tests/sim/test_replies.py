from __future__ import annotations

import re

from web.sim.replies import count_tokens, reply_text, tokenize

from .conftest import GPT, HAIKU


def test_reply_is_deterministic_per_model_and_prompt() -> None:
    assert reply_text(HAIKU, "hello there", 60) == reply_text(HAIKU, "hello there", 60)
    assert reply_text(HAIKU, "hello there", 60) != reply_text(HAIKU, "hello again", 60)
    assert reply_text(HAIKU, "hello there", 60) != reply_text(GPT, "hello there", 60)


def test_reply_names_the_model_and_echoes_the_prompt_verbatim() -> None:
    payload = '<img src=x onerror="alert(1)"> & <script>alert("x")</script>'
    text = reply_text(GPT, payload, 40)
    assert text.startswith(f"{GPT} here. You asked: «{payload}».")


def test_echo_is_limited_to_200_characters() -> None:
    prompt = "word " * 100
    text = reply_text(HAIKU, prompt, 10)
    assert f"«{prompt[:200]}»" in text
    assert prompt[:201] not in text


def test_reply_length_follows_reply_tokens_and_reads_like_sentences() -> None:
    text = reply_text(HAIKU, "tell me something", 80)
    assert 80 <= len(tokenize(text)) < 80 + 25
    body = text.split("».", 1)[1]
    sentences = [s for s in body.replace("!", ".").split(".") if s.strip()]
    assert len(sentences) >= 4
    assert all(s.strip()[0].isupper() for s in sentences)


def test_a_prompt_about_code_gets_a_fenced_python_block() -> None:
    assert "```python\n" in reply_text(HAIKU, "Show me some code please", 60)
    assert "```" not in reply_text(HAIKU, "Show me a poem please", 60)


def test_tokens_are_words_with_their_following_space_and_join_back() -> None:
    text = reply_text(HAIKU, "code with\nnewlines", 50)
    tokens = tokenize(text)
    assert "".join(tokens) == text
    assert all(t.strip() and t.lstrip() == t for t in tokens)
    assert count_tokens("two  words\n") == 2


def test_generated_sentences_use_an_before_a_vowel_sound() -> None:
    text = " ".join(reply_text(HAIKU, f"prompt {i}", 120) for i in range(100))
    assert re.findall(r"\b[Aa] (?:[aeio]\w*|honest)\b", text) == []
    assert re.search(r"\b[Aa]n (?:[aeio]\w*|honest)\b", text)
