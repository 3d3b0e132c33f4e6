"""A wheel built from the checkout installs in a fresh venv and serves the app from elsewhere.

The fresh venv gets the wheel alone (`pip install --no-deps --no-index`); its dependencies come
from this test venv's site-packages through a path line in a .pth file, so the test needs neither
the network nor a re-install of every dependency. A path line only puts a folder on sys.path, it
does not run the .pth files inside it, so the checkout's editable install (a finder that a .pth
starts) cannot leak in; the tests check that `web` is imported from the fresh venv anyway.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import sysconfig
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from web.db.migrate import head_revision

ROOT = Path(__file__).resolve().parent.parent

#: What the wheel is built from; copied out so the build leaves nothing (build/, *.egg-info) in the
#: checkout and a stale build/ folder cannot add files the checkout no longer has.
BUILD_INPUTS = ("pyproject.toml", "README.md", "web", "templates", "static", "migrations")

#: Where each top-level folder of the checkout lands in the wheel.
SHIPPED = {
    "web": "web",
    "templates": "web/templates",
    "static": "web/static",
    "migrations": "web/migrations",
}

PIP = (sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input")
STEP_TIMEOUT_S = 120.0
START_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class FreshInstall:
    wheel: Path
    venv: Path
    site_packages: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"


def _clean_env() -> dict[str, str]:
    """This environment without anything that would point the fresh venv back at the checkout."""
    drop = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "ANTHROPIC_API_KEY", "OPENAI_API_KEY")
    return {
        k: v for k, v in os.environ.items() if k not in drop and not k.startswith("UNDERSTUDY_")
    }


def _run(*args: str | Path, cwd: Path) -> str:
    done = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT_S,
    )
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _checkout_files(folder: str) -> set[str]:
    base = ROOT / folder
    return {
        path.relative_to(base).as_posix()
        for path in base.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def _build_wheel(out: Path) -> Path:
    source = out / "source"
    for name in BUILD_INPUTS:
        origin = ROOT / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(origin, source / name)
    wheels = out / "wheels"
    _run(*PIP, "wheel", "-q", "--no-index", "--no-deps", "--no-build-isolation", "-w", wheels,
         source, cwd=out)  # fmt: skip
    (wheel,) = wheels.glob("understudy-*.whl")
    return wheel


def _install_in_fresh_venv(wheel: Path, venv: Path) -> Path:
    """Install the wheel alone in a new venv; returns its site-packages."""
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=venv.parent)
    python = venv / "bin" / "python"
    # Before the dependencies are visible, so pip sees an empty venv and leaves alone the
    # checkout's editable understudy, which it would otherwise find and try to uninstall.
    _run(*PIP, "--python", python, "install", "-q", "--no-index", "--no-deps", wheel,
         cwd=venv.parent)  # fmt: skip
    where = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site_packages = Path(_run(python, "-c", where, cwd=venv.parent).strip())
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site_packages / "understudy_test_dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")
    return site_packages


@pytest.fixture(scope="module")
def fresh_install(tmp_path_factory: pytest.TempPathFactory) -> FreshInstall:
    base = tmp_path_factory.mktemp("packaging")
    wheel = _build_wheel(base)
    venv = base / "venv"
    return FreshInstall(wheel=wheel, venv=venv, site_packages=_install_in_fresh_venv(wheel, venv))


def test_the_wheel_ships_every_module_template_static_file_and_migration(
    fresh_install: FreshInstall,
) -> None:
    names = set(zipfile.ZipFile(fresh_install.wheel).namelist())
    expected = {
        f"{inside}/{relative}"
        for folder, inside in SHIPPED.items()
        for relative in _checkout_files(folder)
    }
    assert sorted(expected - names) == []
    assert "web/chain.toml" in names
    assert "web/templates/base.html" in names
    assert "web/migrations/env.py" in names
    assert any(re.fullmatch(r"web/static/vendor/htmx-[\d.]+\.min\.js", n) for n in names)
    assert [n for n in names if n.endswith(".pyc")] == []


def test_the_fresh_venv_imports_web_from_the_wheel_not_the_checkout(
    fresh_install: FreshInstall, tmp_path: Path
) -> None:
    shown = _run(
        fresh_install.python,
        "-c",
        "import web, web.resources as r; print(web.__file__); print(r.TEMPLATES_DIR); "
        "print(r.STATIC_DIR); print(r.MIGRATIONS_DIR)",
        cwd=tmp_path,
    )
    installed = fresh_install.site_packages / "web"
    assert [Path(line) for line in shown.splitlines()] == [
        installed / "__init__.py",
        installed / "templates",
        installed / "static",
        installed / "migrations",
    ]


@pytest.fixture
def served(fresh_install: FreshInstall, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`understudy serve --port 0` of the fresh venv, from an unrelated folder: (URL, data dir)."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    data_dir = tmp_path / "data"
    env = _clean_env()
    env.update(
        UNDERSTUDY_DATA_DIR=str(data_dir),
        UNDERSTUDY_ADMIN_PASSWORD="packaging-test-password",
        PYTHONUNBUFFERED="1",
    )
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [
                fresh_install.venv / "bin" / "understudy",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
            ],
            cwd=elsewhere,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while (found := re.search(r"running at (http://\S+/)", log_path.read_text())) is None:
            assert process.poll() is None, f"serve exited:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, (
                f"no URL in {START_TIMEOUT_S}s:\n{log_path.read_text()}"
            )
            time.sleep(0.1)
        yield found.group(1), data_dir
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def test_understudy_serve_from_another_folder_serves_the_page_its_assets_and_migrates(
    served: tuple[str, Path],
) -> None:
    url, data_dir = served
    with httpx.Client(base_url=url, timeout=10.0) as client:
        page = client.get("/")
        assert page.status_code == 200
        assert 'id="composer"' in page.text  # the chat page, rendered from the wheel's templates
        assert "demo: simulated models" in page.text  # no keys: the wheel's chain.toml, simulated

        assets = re.findall(r'(?:href|src)="/static/([^"?]+)[^"]*"', page.text)
        assert {Path(a).suffix for a in assets} == {".css", ".js"}
        assert any(a.startswith("vendor/htmx-") for a in assets)
        for asset in assets:
            served_asset = client.get(f"/static/{asset}")
            assert served_asset.status_code == 200, asset
            kind = "text/css" if asset.endswith(".css") else "text/javascript"
            assert served_asset.headers["content-type"].startswith(kind), asset
            assert served_asset.content == (ROOT / "static" / asset).read_bytes(), asset

    with contextlib.closing(sqlite3.connect(data_dir / "understudy.db")) as db:
        (revision,) = db.execute("SELECT version_num FROM alembic_version").fetchone()
    assert revision == head_revision()
