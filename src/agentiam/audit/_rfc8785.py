"""RFC 8785 JSON Canonicalization Scheme (JCS): one byte string per JSON value.

The audit log hashes these bytes, so this encoding must never change: an old leaf
must hash the same forever.  A change to what an event contains goes into a new
event schema version (the ``v`` member), never into this encoder.  This module
imports only the standard library, so the SDK can use it to recompute leaves.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from agentiam.audit.errors import CanonicalizationError

# RFC 8785 section 3.2.2.2: these five controls use their short escapes, the other
# characters below U+0020 use \u00XX with lower-case hex, and everything else
# except '"' and '\' is written as itself in UTF-8.
_SHORT_ESCAPES: Final = {
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
    '"': '\\"',
    "\\": "\\\\",
}

# I-JSON (RFC 7493), which RFC 8785 requires, limits numbers to IEEE 754 doubles.
# An integer that no double equals would change its value, so it is rejected.
_MAX_SAFE_INTEGER: Final = 2**53
_MAX_DEPTH: Final = 64


def canonicalize(value: Any) -> bytes:
    """Encode a JSON value as RFC 8785 canonical UTF-8 bytes.

    Values that ``json.dumps`` already encodes exactly as RFC 8785 does (see
    ``_is_fast_safe``) take that C encoder; every other value takes the reference
    encoder, ``canonicalize_reference``.  Both return the same bytes.

    Args:
        value: ``None``, ``bool``, ``int``, ``float``, ``str``, a mapping with
            string keys or a list or tuple of such values.

    Raises:
        CanonicalizationError: a float is NaN or infinite, an integer has no
            exactly equal double, a string contains a lone surrogate, a key is not
            a string, or the value is of another type or nested too deeply.
    """
    if _is_fast_safe(value, 0):
        text = _fast_encode(value)
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            # A lone surrogate: the reference encoder raises the proper error.
            pass
    return canonicalize_reference(value)


# RFC 8785 section 3.2.2.3 reads every number as an IEEE 754 double.  The text of
# a double from 2**53 up may name another integer: 2**60 is written
# "1152921504606847000", which ``json.loads`` reads as that integer, not 2**60,
# and that integer has no exactly equal double.  ``loads`` reads an integer
# text beyond ``_MAX_EXACT_INTEGER`` in magnitude as the double it denotes.
_MAX_EXACT_INTEGER: Final = 2**53 - 1


def _parse_integer(text: str) -> int | float:
    value = int(text)
    if -_MAX_EXACT_INTEGER <= value <= _MAX_EXACT_INTEGER:
        return value
    return float(text)


DECODER: Final = json.JSONDecoder(parse_int=_parse_integer)


def loads(text: str | bytes) -> Any:
    """Parse JSON, reading integers as RFC 8785 does when they pass 2**53 - 1.

    ``canonicalize(loads(canonicalize(value)))`` equals ``canonicalize(value)``
    for every value that ``canonicalize`` accepts, and every integer it returns
    is within the range that ``agentiam.strict_json`` accepts.

    Raises:
        ValueError: the text is not JSON (``json.JSONDecodeError``) or, as bytes,
            not UTF-8 (``UnicodeDecodeError``).
    """
    if isinstance(text, bytes | bytearray):
        text = text.decode("utf-8")
    return DECODER.decode(text)


def _dumps(value: Any) -> str:
    return json.dumps(
        value,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )


def _make_fast_encoder() -> Callable[[Any], str]:
    """Return ``_dumps`` built once on the C encoder that ``json.dumps`` uses.

    ``json.dumps`` builds the same encoder on every call.  The circular-reference
    check is left out (``markers`` is ``None``) because ``_is_fast_safe`` has
    already bounded the depth of every value given to it.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return _dumps
    encode = make(
        None, None, json.encoder.encode_basestring, None, ":", ",", True, False, False
    )
    return lambda value: "".join(encode(value, 0))


_fast_encode: Final = _make_fast_encoder()
# The string encoder of ``_fast_encode``, which writes every string and key with
# it, as ``json.dumps`` with ``ensure_ascii=False`` does.
_fast_encode_string: Final[Callable[[str], str]] = json.encoder.encode_basestring


def canonicalize_reference(value: Any) -> bytes:
    """Encode a JSON value as RFC 8785 bytes with the pure-Python reference encoder.

    Raises:
        CanonicalizationError: as ``canonicalize`` does.
    """
    parts: list[str] = []
    _encode(value, parts, 0)
    return "".join(parts).encode("utf-8")


# Non-integral floats in this range are written by ``repr`` in plain notation
# with the shortest round-trip digits, which is also ECMAScript's form.  Outside
# it, or for integral floats ("1.0" against "1"), the two forms differ.
_PLAIN_FLOAT_MIN: Final = 1e-4
_PLAIN_FLOAT_MAX: Final = 1e16
# Python sorts keys by code point and RFC 8785 by UTF-16 code unit.  The orders
# agree while no key has a character beyond the Basic Multilingual Plane.
_BMP_MAX: Final = "\uffff"


def _is_fast_safe(value: Any, depth: int) -> bool:
    """Return whether ``json.dumps(sort_keys=True)`` encodes ``value`` as RFC 8785.

    ``json.dumps`` with ``ensure_ascii=False`` escapes strings exactly as RFC 8785
    section 3.2.2.2 does.  The differences are float notation, integers beyond
    2**53 and key order for non-BMP keys, so those values and every type other than
    the exact built-in JSON types return False and take the reference encoder.
    """
    kind = type(value)
    if kind is dict:
        if depth >= _MAX_DEPTH:
            return False
        for key, item in value.items():
            if type(key) is not str or (not key.isascii() and max(key) > _BMP_MAX):
                return False
            # A string, the usual member, is safe without the call.
            if type(item) is not str and not _is_fast_safe_member(item, depth + 1):
                return False
        return True
    if kind is list or kind is tuple:
        if depth >= _MAX_DEPTH:
            return False
        return all(_is_fast_safe_member(item, depth + 1) for item in value)
    return _is_fast_safe_member(value, depth)


def _is_fast_safe_member(value: Any, depth: int) -> bool:
    # Scalars, the usual members, are decided here without a further call.
    kind = type(value)
    if kind is str or value is None or kind is bool:
        return True
    if kind is int:
        return bool(-_MAX_SAFE_INTEGER <= value <= _MAX_SAFE_INTEGER)
    if kind is float:
        magnitude = abs(value)
        return (
            _PLAIN_FLOAT_MIN <= magnitude < _PLAIN_FLOAT_MAX and not value.is_integer()
        )
    if kind is dict or kind is list or kind is tuple:
        return _is_fast_safe(value, depth)
    return False


def _encode(value: Any, parts: list[str], depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise CanonicalizationError(f"JSON value nests deeper than {_MAX_DEPTH}.")
    if value is None:
        parts.append("null")
    elif value is True:
        parts.append("true")
    elif value is False:
        parts.append("false")
    elif isinstance(value, int):
        parts.append(_encode_integer(value))
    elif isinstance(value, float):
        parts.append(serialize_number(value))
    elif isinstance(value, str):
        parts.append(_encode_string(value))
    elif isinstance(value, Mapping):
        _encode_object(value, parts, depth)
    elif isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        _encode_array(value, parts, depth)
    else:
        raise CanonicalizationError(
            f"Type {type(value).__name__!r} has no JSON representation."
        )


def _encode_integer(value: int) -> str:
    if abs(value) <= _MAX_SAFE_INTEGER:
        return serialize_number(float(value))
    try:
        as_double = float(value)
    except OverflowError as err:
        raise CanonicalizationError(
            f"Integer {value} is beyond the range of a double."
        ) from err
    if int(as_double) != value:
        raise CanonicalizationError(
            f"Integer {value} is beyond 2**53 and no double equals it exactly."
        )
    return serialize_number(as_double)


def _encode_object(value: Mapping[Any, Any], parts: list[str], depth: int) -> None:
    for key in value:
        if not isinstance(key, str):
            raise CanonicalizationError(f"Object key {key!r} is not a string.")

    # Section 3.2.3: members are sorted by their names as arrays of UTF-16 code
    # units.  Big-endian UTF-16 bytes compare in the same order as those units,
    # and encoding them needs the lone-surrogate check first.
    for key in value:
        _check_surrogates(key)
    keys = sorted(value, key=lambda key: key.encode("utf-16-be"))

    parts.append("{")
    for index, key in enumerate(keys):
        if index:
            parts.append(",")
        parts.append(_encode_string(key))
        parts.append(":")
        _encode(value[key], parts, depth + 1)
    parts.append("}")


def _encode_array(value: Sequence[Any], parts: list[str], depth: int) -> None:
    parts.append("[")
    for index, item in enumerate(value):
        if index:
            parts.append(",")
        _encode(item, parts, depth + 1)
    parts.append("]")


def _check_surrogates(text: str) -> None:
    for char in text:
        if "\ud800" <= char <= "\udfff":
            raise CanonicalizationError(
                f"String contains the lone surrogate U+{ord(char):04X}."
            )


def _encode_string(text: str) -> str:
    _check_surrogates(text)
    out = ['"']
    for char in text:
        escaped = _SHORT_ESCAPES.get(char)
        if escaped is not None:
            out.append(escaped)
        elif char < " ":
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def serialize_number(value: float) -> str:
    """Serialize a double as ECMAScript's Number.prototype.toString does.

    RFC 8785 section 3.2.2.3 adopts that algorithm (ECMA-262, Number::toString):
    the shortest digits that round-trip, plain notation for decimal exponents from
    -6 to 21 and exponent notation with an explicit sign outside them.  Python's
    ``repr`` of a float yields the same shortest round-trip digits.

    Raises:
        CanonicalizationError: the value is NaN or infinite.
    """
    if not math.isfinite(value):
        raise CanonicalizationError(f"Number {value!r} is not finite.")
    if value == 0:
        # Both 0.0 and -0.0 serialize as "0".
        return "0"

    sign = "-" if value < 0 else ""
    digits, point = _shortest_digits(abs(value))
    return sign + _format_digits(digits, point)


def _shortest_digits(value: float) -> tuple[str, int]:
    """Return digits ``d`` and ``n`` with value = 0.d * 10**n and no zero at ends."""
    text = repr(value)
    mantissa, _, exponent_text = text.partition("e")
    exponent = int(exponent_text) if exponent_text else 0
    integer_part, _, fraction = mantissa.partition(".")

    digits = integer_part + fraction
    point = len(integer_part) + exponent

    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    return stripped.rstrip("0"), point


def _format_digits(digits: str, point: int) -> str:
    """Lay out digits as ECMA-262 Number::toString steps 6 to 10 do."""
    count = len(digits)
    if count <= point <= 21:
        return digits + "0" * (point - count)
    if 0 < point <= 21:
        return digits[:point] + "." + digits[point:]
    if -6 < point <= 0:
        return "0." + "0" * (-point) + digits

    exponent = point - 1
    exponent_sign = "+" if exponent >= 0 else "-"
    exponent_text = f"e{exponent_sign}{abs(exponent)}"
    if count == 1:
        return digits + exponent_text
    return digits[0] + "." + digits[1:] + exponent_text
