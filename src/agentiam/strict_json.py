"""Strict JSON parsing for everything that arrives from the wire.

``json.loads`` accepts inputs that no peer of ours sends on purpose and that break
later checks: duplicate member names (which value wins is undefined, RFC 8259
section 4), the non-standard constants ``NaN`` and ``Infinity`` (every comparison
with NaN is false, so a time window with NaN in it checks nothing), and nesting
deep enough to exhaust the interpreter's recursion limit.  It also accepts
integers of any length, which overflow the float conversion of a time check, and
strings with lone UTF-16 surrogates, which no UTF-8 encoder can write back (RFC 8259
section 8.2).  ``loads`` rejects all of these with one error type.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Final

from agentiam.errors import AgentIAMError

# Deeper values are rejected; no message agentiam reads nests more than a few levels
# (an ``act`` chain is limited to 16 separately).
MAX_DEPTH: Final = 64

# Integers are limited to the I-JSON range (RFC 7493 section 2.2), the integers that
# an IEEE 754 double represents exactly. No member agentiam reads needs a larger one,
# the largest being NumericDates and audit sequence numbers.
MAX_INTEGER: Final = 2**53 - 1
_MAX_INTEGER_DIGITS: Final = len(str(MAX_INTEGER))

# A lone surrogate can only come from a \u escape in the range D800 to DFFF, or from
# a str that already contains one. Texts without either skip the check of each string.
_SURROGATE_ESCAPE: Final = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE: Final = re.compile("[\ud800-\udfff]")


class StrictJSONError(AgentIAMError, ValueError):
    """The text is not JSON that agentiam accepts."""


class _IntegerRangeError(StrictJSONError):
    """An integer outside the I-JSON range, raised before ``loads`` names its member."""

    def __init__(self, text: str) -> None:
        self.text = text
        super().__init__(_out_of_range(text, None))


def loads(text: str | bytes, *, what: str = "JSON") -> Any:
    """Parse ``text`` as strict JSON.

    Args:
        text: the JSON text; bytes must be UTF-8.
        what: what the text is, for the error message (e.g. ``"JWS payload"``).

    Raises:
        StrictJSONError: the text is not UTF-8 JSON, repeats a member name,
            contains ``NaN``, ``Infinity`` or a number that overflows to it, an
            integer beyond ``MAX_INTEGER`` in magnitude, or a string with a lone
            surrogate, or nests deeper than ``MAX_DEPTH``.
    """
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        if isinstance(text, str):
            # ``json.loads`` rejects a leading byte order mark, and so does this path.
            if text.startswith("\ufeff"):
                raise ValueError("unexpected byte order mark")
            value = _DECODER.decode(text)
        else:
            value = json.loads(
                text,
                object_pairs_hook=_reject_duplicates,
                parse_constant=_reject_constant,
                parse_float=_parse_finite_float,
                parse_int=_parse_safe_int,
            )
    except RecursionError as err:
        raise StrictJSONError(f"{what} nests too deeply") from err
    except _IntegerRangeError as err:
        path = _path_of_unsafe_int(text) if isinstance(text, str) else None
        raise StrictJSONError(_out_of_range(err.text, path)) from err
    except StrictJSONError:
        raise
    except (UnicodeDecodeError, ValueError) as err:
        raise StrictJSONError(f"{what} is not valid UTF-8 JSON") from err

    if isinstance(text, str) and _may_hold_surrogate(text):
        _reject_surrogates(value)

    # Each level of nesting opens with '{' or '[', so a text with at most
    # MAX_DEPTH of them cannot nest deeper and the walk over the value is skipped.
    if isinstance(text, str) and text.count("{") + text.count("[") <= MAX_DEPTH:
        return value
    if _depth(value) > MAX_DEPTH:
        raise StrictJSONError(f"{what} nests deeper than {MAX_DEPTH} levels")
    return value


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) == len(pairs):
        return result

    seen: set[str] = set()
    for name, _ in pairs:
        if name in seen:
            raise StrictJSONError(f"JSON member {name[:64]!r} is duplicated")
        seen.add(name)
    return result


def _reject_constant(name: str) -> Any:
    raise StrictJSONError(f"JSON constant {name!r} is not allowed")


def _parse_finite_float(text: str) -> float:
    # ``1e400`` parses to infinity without passing through ``parse_constant``.
    value = float(text)
    if not math.isfinite(value):
        raise StrictJSONError(f"JSON number {text[:32]!r} is out of range")
    return value


def _parse_safe_int(text: str) -> int:
    # The digit count is checked first: ``int`` of a text past 4300 digits raises
    # a ValueError of its own, and CPython converts long texts in quadratic time.
    digits = len(text) - (text[0] == "-")
    if digits <= _MAX_INTEGER_DIGITS:
        value = int(text)
        if -MAX_INTEGER <= value <= MAX_INTEGER:
            return value
    raise _IntegerRangeError(text)


def _out_of_range(text: str, path: str | None) -> str:
    digits = len(text) - (text[0] == "-")
    shown = repr(text) if len(text) <= 24 else f"'{text[:20]}...' ({digits} digits)"
    where = ""
    if path:
        where = f" at {path[:64]!r}" if path[0] == "[" else f" in member {path[:64]!r}"
    return (
        f"JSON number {shown}{where} is out of range: integers must be between "
        "-(2**53 - 1) and 2**53 - 1"
    )


# One decoder for every call: ``json.loads`` with hooks builds a new one each time.
_DECODER: Final = json.JSONDecoder(
    object_pairs_hook=_reject_duplicates,
    parse_constant=_reject_constant,
    parse_float=_parse_finite_float,
    parse_int=_parse_safe_int,
)


class _UnsafeInt:
    """An out-of-range integer kept in place, so that its member can be named."""

    __slots__ = ()


_UNSAFE: Final = _UnsafeInt()


def _mark_unsafe_int(text: str) -> int | _UnsafeInt:
    try:
        return _parse_safe_int(text)
    except _IntegerRangeError:
        return _UNSAFE


# Used only after a failure, to find where the out-of-range integer sits.
_LOCATOR: Final = json.JSONDecoder(parse_int=_mark_unsafe_int)


def _path_of_unsafe_int(text: str) -> str | None:
    """Return the member path of the first out-of-range integer, e.g. ``a.b[0]``."""
    try:
        value = _LOCATOR.decode(text)
    except (ValueError, RecursionError):
        return None

    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if item is _UNSAFE:
            return path or None
        if isinstance(item, dict):
            children = [
                (child, f"{path}.{name}" if path else name)
                for name, child in item.items()
            ]
        elif isinstance(item, list):
            children = [(child, f"{path}[{i}]") for i, child in enumerate(item)]
        else:
            continue
        stack.extend(reversed(children))
    return None


def _may_hold_surrogate(text: str) -> bool:
    if "\\u" in text and _SURROGATE_ESCAPE.search(text):
        return True
    return not text.isascii() and _SURROGATE.search(text) is not None


def _reject_surrogates(value: Any) -> None:
    # Iterative, like ``_depth``. Member names are checked as well as values.
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            found = _SURROGATE.search(item)
            if found is not None:
                where = f" in member {path[:64]!r}" if path else ""
                raise StrictJSONError(
                    f"JSON string{where} has the lone surrogate "
                    f"U+{ord(found.group()):04X}: strings must be valid Unicode"
                )
        elif isinstance(item, dict):
            for name, child in item.items():
                stack.append((name, path))
                stack.append((child, f"{path}.{name}" if path else name))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{i}]") for i, child in enumerate(item))


def _depth(value: Any) -> int:
    # Iterative, so a value that the parser accepted cannot overflow the stack here.
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest
