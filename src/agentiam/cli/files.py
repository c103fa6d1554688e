"""Files named on the command line: errors in plain words, private output files.

An ``OSError`` prints as "[Errno 2] No such file or directory: 'x'", so these
helpers raise ``FileAccessError`` naming the file's role, its path and the
problem, such as "password file 'x' not found".
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from pathlib import Path
from typing import BinaryIO, TextIO

from agentiam.errors import AgentIAMError
from agentiam.storage.files import is_shared_mode

log = logging.getLogger(__name__)

#: The mode of a file the CLI creates, such as an audit export: owner only, like
#: the database file in the data directory.
PRIVATE_FILE_MODE = 0o600


class FileAccessError(AgentIAMError):
    """A file named on the command line cannot be read or written."""


def describe_file_error(
    role: str, path: str | Path, err: OSError, *, writing: bool = False
) -> str:
    """Return a message naming the file, its role and what is wrong with it.

    Args:
        role: what the file is for, such as "password" or "export".
        path: the path as the user gave it.
        err: the error that opening, reading or writing raised.
        writing: whether the file was opened to be written.
    """
    name = f"{role} file {str(path)!r}"
    if isinstance(err, IsADirectoryError):
        return f"{name} is a directory"
    if isinstance(err, FileNotFoundError):
        if writing:
            return f"{name} cannot be created: its directory was not found"
        return f"{name} not found"
    if isinstance(err, NotADirectoryError):
        return f"{name} not found: a part of its path is not a directory"
    if isinstance(err, PermissionError):
        action = "written" if writing else "read"
        return f"{name} cannot be {action}: permission denied"
    action = "written" if writing else "read"
    reason = err.strerror or errno.errorcode.get(err.errno or 0) or str(err)
    return f"{name} cannot be {action}: {reason}"


def read_text_file(role: str, path: str | Path) -> str:
    """Return the UTF-8 text of ``path``.

    Raises:
        FileAccessError: the file is missing, a directory, unreadable or not UTF-8.
    """
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise FileAccessError(
            f"{role} file {str(path)!r} is not valid UTF-8 text"
        ) from err
    except OSError as err:
        raise FileAccessError(describe_file_error(role, path, err)) from err


def open_binary_file(role: str, path: str | Path) -> BinaryIO:
    """Open ``path`` for reading bytes.

    Raises:
        FileAccessError: the file is missing, a directory or unreadable.
    """
    try:
        return Path(path).open("rb")
    except OSError as err:
        raise FileAccessError(describe_file_error(role, path, err)) from err


def create_private_file(role: str, path: str | Path) -> TextIO:
    """Open ``path`` to write UTF-8 text, creating it with mode 0600.

    An existing file is truncated and keeps its mode, because its owner may
    have set it on purpose, as ``agentiam.storage.files`` does for the data
    directory.  When other users can read or write it, a warning is logged.

    Raises:
        FileAccessError: the path is a directory, its directory is missing or
            the file cannot be written.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
    try:
        descriptor = os.open(path, flags, PRIVATE_FILE_MODE)
    except OSError as err:
        raise FileAccessError(
            describe_file_error(role, path, err, writing=True)
        ) from err

    mode = os.fstat(descriptor).st_mode
    if stat.S_ISREG(mode) and is_shared_mode(mode):
        log.warning(
            "%s file %r is accessible to other users (mode %04o); "
            "run 'chmod 600 %s' to make it private",
            role.capitalize(),
            str(path),
            stat.S_IMODE(mode),
            path,
        )
    return os.fdopen(descriptor, "w", encoding="utf-8")
