"""web.storage: the data folder is 0700 and the database files 0600, whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from web.app import create_app
from web.db.session import make_engine
from web.settings import Settings
from web.storage import private_sqlite_files


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The usual 022 umask, whatever the test runner's, so a forgotten chmod shows."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


async def test_the_app_creates_a_private_data_folder_and_database(
    tmp_path: Path, open_umask: None
) -> None:
    data = tmp_path / "data"
    app = create_app(Settings.from_env({"UNDERSTUDY_DATA_DIR": str(data)}))
    async with app.router.lifespan_context(app):
        db = data / "understudy.db"
        wal, shm = Path(f"{db}-wal"), Path(f"{db}-shm")
        # The app's pool holds a connection open, so -wal and -shm exist (_mode would raise).
        assert _mode(data) == 0o700
        assert {path.name: _mode(path) for path in (db, wal, shm)} == {
            "understudy.db": 0o600,
            "understudy.db-wal": 0o600,
            "understudy.db-shm": 0o600,
        }


async def test_database_files_an_older_version_left_readable_are_tightened(
    tmp_path: Path, open_umask: None
) -> None:
    db = tmp_path / "old.db"
    engine = make_engine(f"sqlite+aiosqlite:///{db}")
    try:
        async with engine.connect() as conn:
            await conn.execute(text("CREATE TABLE t (x INTEGER)"))
            await conn.commit()
        for path in (db, Path(f"{db}-wal")):
            os.chmod(path, 0o644)
        await engine.dispose()
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            assert _mode(db) == 0o600
            assert _mode(Path(f"{db}-wal")) == 0o600
            assert _mode(Path(f"{db}-shm")) == 0o600
    finally:
        await engine.dispose()


def test_a_file_that_cannot_be_tightened_is_left_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "theirs.db"
    db.touch(mode=0o644)
    os.chmod(db, 0o644)

    def refuse(path: object, mode: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "chmod", refuse)
    private_sqlite_files(db)  # no exception: reading another user's database must still work
    assert "cannot make" in caplog.text and "theirs.db" in caplog.text
