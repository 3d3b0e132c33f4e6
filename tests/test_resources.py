"""web.resources in the checkout (the editable install): the folders beside the package.

An installed copy, which finds them inside the package, is tests/test_packaging.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from web.resources import MIGRATIONS_DIR, STATIC_DIR, TEMPLATES_DIR, _locate

ROOT = Path(__file__).resolve().parent.parent


def test_the_checkout_finds_its_folders_at_the_top_of_the_repository() -> None:
    assert (TEMPLATES_DIR, STATIC_DIR, MIGRATIONS_DIR) == (
        ROOT / "templates",
        ROOT / "static",
        ROOT / "migrations",
    )


def test_a_missing_folder_says_where_it_looked_and_how_to_fix_it() -> None:
    with pytest.raises(RuntimeError) as failed:
        _locate("nowhere")
    message = str(failed.value)
    assert "understudy's nowhere/ folder is missing" in message
    assert str(ROOT / "web" / "nowhere") in message
    assert str(ROOT / "nowhere") in message
    assert "reinstall understudy" in message
