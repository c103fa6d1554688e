"""Strict JSON parsing for everything that arrives from the wire.

``json.loads`` accepts inputs that no peer of ours sends on purpose and that break
later checks: duplicate member names (which value wins is undefined, RFC 8259
section 4), the non-standard constants ``NaN`` and ``Infinity`` (every comparison
with NaN is false, so a time window with NaN in it checks nothing), and nesting
deep enough to exhaust the interpreter's recursion limit.  ``loads`` rejects all
three with one error type.
"""

from __future__ import annotations

import json
import math
from typing import Any, Final

from agentiam.errors import AgentIAMError

# Deeper values are rejected; no message agentiam reads nests more than a few levels
# (an ``act`` chain is limited to 16 separately).
MAX_DEPTH: Final = 64


class StrictJSONError(AgentIAMError, ValueError):
    """The text is not JSON that agentiam accepts."""


def loads(text: str | bytes, *, what: str = "JSON") -> Any:
    """Parse ``text`` as strict JSON.

    Args:
        text: the JSON text; bytes must be UTF-8.
        what: what the text is, for the error message (e.g. ``"JWS payload"``).

    Raises:
        StrictJSONError: the text is not UTF-8 JSON, repeats a member name,
            contains ``NaN``, ``Infinity`` or a number that overflows to it, or
            nests deeper than ``MAX_DEPTH``.
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
            )
    except RecursionError as err:
        raise StrictJSONError(f"{what} nests too deeply") from err
    except StrictJSONError:
        raise
    except (UnicodeDecodeError, ValueError) as err:
        raise StrictJSONError(f"{what} is not valid UTF-8 JSON") from err

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


# One decoder for every call: ``json.loads`` with hooks builds a new one each time.
_DECODER: Final = json.JSONDecoder(
    object_pairs_hook=_reject_duplicates,
    parse_constant=_reject_constant,
    parse_float=_parse_finite_float,
)


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
