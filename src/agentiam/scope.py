"""The strict parser of an OAuth ``scope`` value, for every place it is read.

RFC 6749 section 3.3 defines a scope as scope tokens separated by single spaces
(%x20), each token made of the printable ASCII characters other than space, '"'
and '\\'.  ``split_scope`` accepts exactly that, so a tab, a newline, a non-ASCII
space or a doubled space is an error, never a second separator.
"""

from __future__ import annotations

import re
from typing import Final

from agentiam.errors import InvalidScopeError

_SCOPE: Final = re.compile(
    r"[\x21\x23-\x5b\x5d-\x7e]+(?: [\x21\x23-\x5b\x5d-\x7e]+)*", re.ASCII
)
_BAD_CHAR: Final = re.compile(r"[^\x21\x23-\x5b\x5d-\x7e]")


def split_scope(text: str) -> tuple[str, ...]:
    """Return the scope tokens of ``text`` in the order sent, repeats included.

    Raises:
        InvalidScopeError: ``text`` is empty, has an empty token (a leading,
            trailing or doubled space) or a character outside the token set. The
            message quotes the token, cut to 64 characters.
    """
    if _SCOPE.fullmatch(text):
        return tuple(text.split(" "))

    if not text:
        raise InvalidScopeError("The scope is empty.")
    for token in text.split(" "):
        found = _BAD_CHAR.search(token)
        if found is not None:
            raise InvalidScopeError(
                f"Invalid scope value {token[:64]!r}: the character "
                f"{found.group()!r} is not allowed in a scope token."
            )
    raise InvalidScopeError(
        f"Invalid scope value {text[:64]!r}: scope tokens are separated by "
        "single spaces."
    )
