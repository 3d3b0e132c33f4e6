"""Where the templates, static files and migrations are, in a checkout and in an installed copy.

They live at the top of the repository (``templates/``, ``static/``, ``migrations/``), and
pyproject.toml maps them into the package for the wheel (``web/templates``, ...). So an installed
copy has them inside the package, wherever it was installed and whatever the working directory.
A source checkout, including the editable install ``make setup`` makes, has them beside the
package instead: setuptools' editable finder cannot import a mapped folder without an
``__init__.py``, so looking them up as subpackages would fail there.

A folder in neither place is a broken install, reported once, at import.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def _package_dir() -> Path:
    package = files("web")
    if not isinstance(package, Path):
        # Jinja2, StaticFiles and Alembic read folders on disk, not inside an archive.
        raise RuntimeError(f"understudy must be installed as files on disk, not from {package}")
    return package


def _locate(name: str) -> Path:
    installed = _package_dir() / name
    if installed.is_dir():
        return installed
    checkout = _package_dir().parent
    beside = checkout / name
    if (checkout / "pyproject.toml").is_file() and beside.is_dir():
        return beside
    raise RuntimeError(
        f"understudy's {name}/ folder is missing (looked in {installed} and {beside}): "
        "reinstall understudy (pip install <checkout>) or run it from a complete checkout."
    )


TEMPLATES_DIR = _locate("templates")
STATIC_DIR = _locate("static")
MIGRATIONS_DIR = _locate("migrations")
