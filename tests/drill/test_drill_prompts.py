"""The prompts a drill sends (web.drill.prompts): the shipped file and your own."""

from __future__ import annotations

from pathlib import Path

import pytest

from web.drill.prompts import PromptFileError, load_prompts, parse_prompts, shipped_prompts, take


def test_one_prompt_per_paragraph_and_hash_lines_are_comments() -> None:
    text = "# a comment\nFirst prompt,\non two lines.\n\n\n  \nSecond one\n# trailing note\n"
    assert parse_prompts(text) == ["First prompt,\non two lines.", "Second one"]


def test_the_shipped_prompts_are_representative_and_installed_with_the_package() -> None:
    prompts = shipped_prompts()
    assert len(prompts) >= 10
    assert any("```" in p or "SELECT" in p for p in prompts)  # code, not only prose
    assert all(not p.startswith("#") for p in prompts)


def test_take_cycles_through_the_prompts_in_order() -> None:
    assert take(["a", "b"], 5) == ["a", "b", "a", "b", "a"]
    assert take(["a", "b", "c"], 2) == ["a", "b"]


def test_your_own_file_must_hold_at_least_one_prompt(tmp_path: Path) -> None:
    path = tmp_path / "prompts.txt"
    path.write_text("Hello?\n\nHow are you?\n", encoding="utf-8")
    assert load_prompts(path) == ["Hello?", "How are you?"]
    path.write_text("# only comments\n\n", encoding="utf-8")
    with pytest.raises(PromptFileError, match="has no prompts: write one per paragraph"):
        load_prompts(path)
    with pytest.raises(PromptFileError, match="cannot read the prompt file"):
        load_prompts(tmp_path / "missing.txt")
