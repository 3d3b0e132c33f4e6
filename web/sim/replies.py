"""Deterministic replies that read like text and name the model that wrote them.

A reply depends only on (model, prompt, reply_tokens), so tests can assert it. It opens with the
model id and an echo of the prompt (the app's XSS test relies on the user's payload coming back
verbatim), then fills up with sentences built from templates, chosen by a generator seeded with a
hash of model and prompt. A prompt that mentions "code" also gets a fenced Python block.

A token is a run of non-space characters with the whitespace that follows it: joining the tokens
gives the reply back exactly, and each token is streamed as one delta.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import re
from collections.abc import Iterator

ECHO_CHARS = 200

_TOKEN = re.compile(r"\S+\s*")
_ARTICLE = re.compile(r"\b([Aa]) (\w+)")
"""'a' before a word: becomes 'an' when that word starts with a vowel ('an honest answer')."""

_TEMPLATES = (
    "The {adj} {noun} {verb} the {noun2} before the {noun3} {verb2} it.",
    "In practice, a {adj} {noun} {verb} every {noun2} that {verb2} the {noun3}.",
    "Most teams find that the {noun} {verb} the {noun2} far better when it is {adj}.",
    "A {adj} {noun} rarely {verb} a {noun2}, but it often {verb2} the {noun3}.",
    "When the {noun} is {adj}, the {noun2} {verb} the {noun3} on its own.",
    "It helps to remember that each {noun} {verb} a {adj} {noun2}.",
    "Consider how the {noun2} {verb} the {noun} while the {noun3} stays {adj}.",
    "Here the {adj} {noun} {verb} the {noun2}, and the {noun3} {verb2} the rest.",
    "Nobody expects the {noun} to be {adj}, yet it {verb} the {noun2} every time.",
    "One simple rule: the {noun} {verb} the {noun2}, never the {noun3}.",
    "A {noun} that {verb} the {noun2} keeps the {noun3} {adj}.",
    "After a while the {noun2} {verb2} the {adj} {noun}, which is exactly the point.",
    "If the {noun3} {verb} the {noun}, the {noun2} becomes {adj} again.",
    "Think of the {noun} as a {adj} {noun2} that {verb} the {noun3}.",
    "The short answer is that the {noun} {verb} the {adj} {noun2}.",
    "That is why a careful {noun} {verb} the {noun2} before it {verb2} the {noun3}.",
)

_ADJECTIVES = (
    "quiet",
    "steady",
    "careful",
    "simple",
    "patient",
    "bright",
    "narrow",
    "gentle",
    "honest",
    "useful",
    "small",
    "clear",
    "calm",
    "sturdy",
    "modest",
    "curious",
    "reliable",
    "tidy",
    "plain",
    "spare",
    "nimble",
    "clever",
    "sensible",
    "humble",
    "early",
    "late",
    "warm",
    "brisk",
    "thorough",
    "practical",
    "robust",
    "familiar",
    "subtle",
    "lively",
    "fair",
)
_NOUNS = (
    "garden",
    "river",
    "library",
    "kitchen",
    "bridge",
    "lantern",
    "harbor",
    "notebook",
    "teacher",
    "engine",
    "compass",
    "orchard",
    "window",
    "village",
    "signal",
    "journey",
    "workshop",
    "letter",
    "mountain",
    "meadow",
    "question",
    "answer",
    "recipe",
    "map",
    "student",
    "clock",
    "market",
    "forest",
    "ladder",
    "story",
    "theory",
    "method",
    "plan",
    "habit",
    "pattern",
    "schedule",
    "draft",
    "sketch",
    "record",
    "system",
    "team",
    "tool",
    "reader",
    "writer",
    "editor",
    "builder",
    "gardener",
    "traveler",
    "neighbor",
    "council",
)
_VERBS = (
    "shapes",
    "guides",
    "follows",
    "supports",
    "explains",
    "improves",
    "protects",
    "connects",
    "measures",
    "simplifies",
    "balances",
    "reveals",
    "carries",
    "organizes",
    "tests",
    "answers",
    "outlasts",
    "remembers",
    "prepares",
    "notices",
    "repairs",
    "strengthens",
    "clarifies",
    "anticipates",
    "welcomes",
    "replaces",
    "sharpens",
    "steadies",
    "rewards",
    "frames",
)

_SNIPPETS = (
    ('def greet(name: str) -> str:\n    return f"Hello, {name}!"\n\nprint(greet("world"))'),
    (
        "def fibonacci(n: int) -> list[int]:\n"
        "    numbers = [0, 1]\n"
        "    while len(numbers) < n:\n"
        "        numbers.append(numbers[-1] + numbers[-2])\n"
        "    return numbers[:n]"
    ),
    (
        "from collections import Counter\n"
        "\n"
        "def top_words(text: str, k: int = 3) -> list[tuple[str, int]]:\n"
        "    return Counter(text.lower().split()).most_common(k)"
    ),
)


def tokenize(text: str) -> list[str]:
    """Words with their following whitespace; ``"".join(tokenize(t)) == t.lstrip()``."""
    return _TOKEN.findall(text)


def count_tokens(text: str) -> int:
    """The simulator's token count for input text: its number of words."""
    return len(text.split())


def reply_text(model: str, prompt: str, reply_tokens: int) -> str:
    """The reply `model` gives to `prompt`: about `reply_tokens` tokens, never fewer than the opening."""
    return "".join(reply_tokens_of(model, prompt, reply_tokens))


def reply_tokens_of(model: str, prompt: str, reply_tokens: int) -> Iterator[str]:
    """The tokens of :func:`reply_text`, made one sentence at a time as they are taken: a reply
    cut at `max_tokens` costs its first `max_tokens` tokens, however long the profile's reply."""
    seed = hashlib.sha256(f"{model}\x00{prompt}".encode()).digest()
    rng = random.Random(seed)
    parts = [f"{model} here. You asked: «{prompt[:ECHO_CHARS]}»."]
    if "code" in prompt.lower():
        snippet = rng.choice(_SNIPPETS)
        parts.append(f"Here is a small example:\n\n```python\n{snippet}\n```\n\n")
    text = " ".join(parts)
    used = len(tokenize(text))
    separator = "" if text.endswith("\n") else " "
    yield from tokenize(text + separator)
    while True:
        sentence = _sentence(rng)
        used += len(sentence.split())
        if used >= reply_tokens:
            yield from tokenize(sentence)
            return
        yield from tokenize(sentence + " ")


def first_tokens(
    model: str, prompt: str, reply_tokens: int, max_tokens: int | None
) -> tuple[list[str], bool]:
    """The reply's tokens up to `max_tokens`, and whether that is the whole reply (False: cut)."""
    tokens = reply_tokens_of(model, prompt, reply_tokens)
    if max_tokens is None:
        return list(tokens), True
    taken = list(itertools.islice(tokens, max_tokens + 1))
    return taken[:max_tokens], len(taken) <= max_tokens


def _sentence(rng: random.Random) -> str:
    nouns = rng.sample(_NOUNS, 3)
    verbs = rng.sample(_VERBS, 2)
    text = rng.choice(_TEMPLATES).format(
        adj=rng.choice(_ADJECTIVES),
        noun=nouns[0],
        noun2=nouns[1],
        noun3=nouns[2],
        verb=verbs[0],
        verb2=verbs[1],
    )
    return _ARTICLE.sub(_article, text)


def _article(match: re.Match[str]) -> str:
    word = match.group(2).lower()
    vowel_sound = word[0] in "aeio" or word.startswith(("hon", "hour", "und", "unt", "ups"))
    return f"{match.group(1)}{'n' if vowel_sound else ''} {match.group(2)}"
