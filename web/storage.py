"""The data folder and the SQLite files are private to the user who runs the app.

The folder holds the session signing key and the database (conversations, turn log), so a folder
this app creates is 0700 and the database files are 0600, whatever the process umask: modes are
set with chmod after creation, since os.mkdir and SQLite's own file creation honour the umask.
SQLite creates the -wal and -shm files with the database file's mode, so a private database keeps
them private; files left by an older version are tightened when a connection opens.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

DIR_MODE = 0o700
FILE_MODE = 0o600
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def private_dir(path: Path) -> None:
    """Create ``path`` (and its parents) if missing; a folder made here is 0700."""
    if path.is_dir():
        return
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    os.chmod(path, DIR_MODE)


def private_sqlite_files(database: Path) -> None:
    """The database file and whichever of its companions exist, 0600.

    A file this user may not chmod (another owner's, a read-only mount) is left as it is, with a
    warning: reading it, as `understudy turns` may, must still work.
    """
    for candidate in (database, *(Path(f"{database}{suffix}") for suffix in SQLITE_COMPANIONS)):
        try:
            if os.stat(candidate).st_mode & 0o777 != FILE_MODE:
                os.chmod(candidate, FILE_MODE)
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("cannot make %s private (%s); check its owner and mode", candidate, exc)
