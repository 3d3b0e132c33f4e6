from __future__ import annotations

import random
import re

import pytest

from web.sim import replies
from web.sim.limits import MAX_REPLY_TOKENS
from web.sim.replies import count_tokens, first_tokens, reply_text, reply_tokens_of, tokenize

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


def test_tokens_are_made_only_as_far_as_they_are_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[str] = []

    def counting(rng: random.Random) -> str:
        made.append(sentence_of(rng))
        return made[-1]

    sentence_of = replies._sentence
    monkeypatch.setattr(replies, "_sentence", counting)
    tokens, whole = first_tokens(HAIKU, "hello", MAX_REPLY_TOKENS, 60)
    assert len(tokens) == 60 and not whole
    # Every sentence has at least five words: 60 tokens (and the one that says "cut") need at
    # most 13 of them, whatever the profile's reply length.
    assert len(made) <= 13


def test_first_tokens_are_the_replys_own_and_say_whether_it_was_cut() -> None:
    whole = tokenize(reply_text(HAIKU, "write some code", 300))
    assert first_tokens(HAIKU, "write some code", 300, None) == (whole, True)
    assert first_tokens(HAIKU, "write some code", 300, len(whole)) == (whole, True)
    assert first_tokens(HAIKU, "write some code", 300, 60) == (whole[:60], False)
    assert "".join(reply_tokens_of(HAIKU, "write some code", 300)) == "".join(whole)
