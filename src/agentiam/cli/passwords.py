"""Reading a password for a CLI command from a file, the terminal or standard input."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from agentiam.cli.files import read_text_file
from agentiam.errors import InvalidRequestError

_STDIN_CLOSED = (
    "No password given: standard input is closed. Use --password-file or "
    "AGENTIAM_PASSWORD."
)
_ON_STDIN = "on standard input"


def read_password_file(path: str | Path) -> str:
    """Return the password in ``path``: one line, with or without a final newline.

    Raises:
        FileAccessError: the file is missing, a directory, unreadable or not UTF-8.
        InvalidRequestError: the file contains more than one line, so it is not
            clear which part is the password.
    """
    text = read_text_file("password", path)
    return _one_line(text, f"Invalid password file {str(path)!r}")


def stdin_is_terminal(stdin: TextIO | None = None) -> bool:
    """Return whether standard input is a terminal that a prompt can read."""
    stream = sys.stdin if stdin is None else stdin
    if stream is None:
        return False
    try:
        return stream.isatty()
    except ValueError:
        # isatty on a closed stream raises ValueError.
        return False


def read_password_stdin(stdin: TextIO | None = None) -> str:
    """Return the password piped to standard input, by the rule of a password file.

    Raises:
        InvalidRequestError: standard input is closed or empty, is not UTF-8, or
            contains more than one line.
    """
    stream = sys.stdin if stdin is None else stdin
    try:
        text = stream.read() if stream is not None else ""
    except UnicodeDecodeError as err:
        raise InvalidRequestError(_not_utf8(_ON_STDIN)) from err
    if not text:
        raise InvalidRequestError(_STDIN_CLOSED)
    check_utf8(text, _ON_STDIN)
    return _one_line(text, f"Invalid password {_ON_STDIN}")


def prompt_password(text: str, prompt: Callable[[str], str] | None = None) -> str:
    """Ask for a password on the terminal, or read it from a standard input that
    is not one.

    Without a terminal, ``getpass`` prints a ``GetPassWarning`` and reads the
    input anyway, so it is called only when standard input is a terminal.

    Args:
        text: the prompt.
        prompt: the function that prompts, used in place of ``getpass.getpass``
            and the terminal check.

    Raises:
        InvalidRequestError: standard input closed before a line was read, the
            input is not UTF-8, or standard input is not a terminal and contains
            more than one line.
    """
    if prompt is None:
        if not stdin_is_terminal():
            return read_password_stdin()
        prompt = getpass.getpass
    try:
        password = prompt(text)
    except EOFError:
        raise InvalidRequestError(_STDIN_CLOSED) from None
    except UnicodeDecodeError as err:
        raise InvalidRequestError(_not_utf8("at the prompt")) from err
    return check_utf8(password, "at the prompt")


def check_utf8(password: str, source: str) -> str:
    """Return ``password`` if it can be encoded as UTF-8.

    CPython 3.11 decodes environment variables, and standard input under the C,
    POSIX and C.UTF-8 locales or in UTF-8 mode, with the ``surrogateescape``
    error handler.  Bytes that are not UTF-8 then arrive as lone surrogates, and
    without this check they fail only when the password is encoded to be hashed.

    Args:
        password: the password as read.
        source: where it was read, for the message, such as "on standard input".

    Raises:
        InvalidRequestError: ``password`` contains a lone surrogate.
    """
    try:
        password.encode("utf-8")
    except UnicodeEncodeError as err:
        raise InvalidRequestError(_not_utf8(source)) from err
    return password


def _not_utf8(source: str) -> str:
    return f"Invalid password {source}: expected UTF-8 text."


def _one_line(text: str, problem: str) -> str:
    password = text.removesuffix("\n").removesuffix("\r")
    if "\n" in password or "\r" in password:
        raise InvalidRequestError(f"{problem}: expected one line, the password.")
    return password
