"""The messages a drill sends: the shipped representative prompts (``prompts.txt``, package data
beside this module, so an installed copy has them too) or the user's own file of the same form,
one prompt per paragraph, ``#`` lines as comments."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

SHIPPED = "prompts.txt"


class PromptFileError(ValueError):
    """The prompt file cannot be used; the message says why."""


def parse_prompts(text: str) -> list[str]:
    prompts, lines = [], []
    for line in [*text.splitlines(), ""]:
        if line.lstrip().startswith("#"):
            continue
        if line.strip():
            lines.append(line.rstrip())
        elif lines:
            prompts.append("\n".join(lines))
            lines = []
    return prompts


def shipped_prompts() -> list[str]:
    return parse_prompts(files("web.drill").joinpath(SHIPPED).read_text(encoding="utf-8"))


def load_prompts(path: Path | None) -> list[str]:
    """The prompts of ``path``, or the shipped ones."""
    if path is None:
        return shipped_prompts()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PromptFileError(f"cannot read the prompt file {path}: {exc}") from None
    prompts = parse_prompts(text)
    if not prompts:
        raise PromptFileError(
            f"the prompt file {path} has no prompts: write one per paragraph (separated by a "
            "blank line); lines starting with # are comments."
        )
    return prompts


def take(prompts: list[str], count: int) -> list[str]:
    """``count`` prompts: the first ones, in turn again from the start when there are fewer."""
    return [prompts[i % len(prompts)] for i in range(count)]
