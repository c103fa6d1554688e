"""Owner-only permissions for the data directory and the SQLite database file.

The database contains password hashes, client-secret hashes and encrypted signing
keys, so a data directory this package creates gets mode 0700 and a SQLite file
gets 0600 before SQLite opens it.  SQLite gives its ``-wal`` and ``-shm`` files
the database file's permissions, so they follow.  A directory or file that
already exists is left as it is, because its owner may have set its mode on
purpose; when other users can reach it, a warning is logged.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

DATA_DIR_MODE = 0o700
DATABASE_FILE_MODE = 0o600
# Any permission bit for the group or for other users.
_SHARED_BITS = stat.S_IRWXG | stat.S_IRWXO


def prepare_data_dir(path: Path) -> None:
    """Create the data directory with mode 0700, or warn if others can reach it.

    Missing parent directories are created with the default mode; only the data
    directory itself is made private.
    """
    try:
        path.mkdir(mode=DATA_DIR_MODE, parents=True)
    except FileExistsError:
        _warn_if_shared(path, "Data directory is accessible to other users")


def sqlite_database_file(url: str) -> Path | None:
    """Return the file of a SQLite ``url``.

    Returns ``None`` for an in-memory database, a ``file:`` URI, which SQLite
    resolves itself, and any other kind of database.
    """
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite"):
        return None
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def prepare_sqlite_file(url: str) -> None:
    """Create the SQLite database file of ``url`` with mode 0600 if it is missing.

    In-memory databases and ``file:`` URIs are left to SQLite.  An existing file
    is not changed; a warning is logged when other users can read or write it.
    A missing parent directory is left for SQLite to report.
    """
    path = sqlite_database_file(url)
    if path is None or not path.parent.is_dir():
        return
    try:
        descriptor = os.open(
            path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, DATABASE_FILE_MODE
        )
    except FileExistsError:
        _warn_if_shared(path, "Database file is accessible to other users")
        return
    os.close(descriptor)


def is_shared_mode(mode: int) -> bool:
    """Return whether ``mode`` gives the group or other users any permission."""
    return bool(stat.S_IMODE(mode) & _SHARED_BITS)


def _warn_if_shared(path: Path, message: str) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if is_shared_mode(mode):
        log.warning(message, extra={"path": str(path), "mode": f"{mode:04o}"})
