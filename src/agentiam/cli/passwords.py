"""Reading a password for a CLI command from a file or the terminal."""

from __future__ import annotations

import getpass
from collections.abc import Callable
from pathlib import Path

from agentiam.errors import InvalidRequestError


def read_password_file(path: str | Path) -> str:
    """Return the password in ``path``: one line, with or without a final newline.

    Raises:
        OSError: the file cannot be read.
        InvalidRequestError: the file contains more than one line, so it is not
            clear which part is the password.
    """
    text = Path(path).read_text(encoding="utf-8")
    password = text.removesuffix("\n").removesuffix("\r")
    if "\n" in password or "\r" in password:
        raise InvalidRequestError(
            f"Invalid password file {str(path)!r}: expected one line, the password."
        )
    return password


def prompt_password(text: str, prompt: Callable[[str], str] = getpass.getpass) -> str:
    """Ask for a password on the terminal.

    Raises:
        InvalidRequestError: standard input closed before a line was read.
    """
    try:
        return prompt(text)
    except EOFError:
        raise InvalidRequestError(
            "No password given: standard input is closed. Use --password-file or "
            "AGENTIAM_PASSWORD."
        ) from None
