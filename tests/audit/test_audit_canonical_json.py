"""RFC 8785 canonical JSON: the RFC's published examples and properties."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentiam.audit._rfc8785 import (
    canonicalize,
    canonicalize_reference,
    loads,
    serialize_number,
)
from agentiam.audit.errors import AuditEventError, CanonicalizationError
from agentiam.audit.events import AuditEvent

VECTORS = json.loads(
    (Path(__file__).parents[1] / "vectors" / "rfc8785_examples.json").read_text(
        encoding="utf-8"
    )
)


@pytest.mark.parametrize(
    "case", VECTORS["objects"], ids=[case["id"] for case in VECTORS["objects"]]
)
def test_canonicalize_rfc_examples(case: dict[str, str]) -> None:
    output = canonicalize(json.loads(case["input"]))
    if "expected_hex" in case:
        assert output.hex() == case["expected_hex"]
    else:
        assert output == case["expected"].encode("utf-8")


NUMBER_CASES = VECTORS["numbers"]["cases"]


@pytest.mark.parametrize(
    "case", NUMBER_CASES, ids=[case["bits"] for case in NUMBER_CASES]
)
def test_serialize_number_appendix_b(case: dict[str, str | None]) -> None:
    value = struct.unpack(">d", bytes.fromhex(str(case["bits"])))[0]
    if case["expected"] is None:
        with pytest.raises(CanonicalizationError, match="not finite"):
            serialize_number(value)
    else:
        assert serialize_number(value) == case["expected"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param(float("nan"), "not finite", id="nan"),
        pytest.param(float("-inf"), "not finite", id="negative-infinity"),
        pytest.param(2**53 + 1, "beyond 2\\*\\*53", id="big-integer"),
        pytest.param("\ud800", "lone surrogate U\\+D800", id="lone-surrogate"),
        pytest.param({"\udfff": 1}, "lone surrogate", id="surrogate-key"),
        pytest.param({1: "a"}, "is not a string", id="integer-key"),
        pytest.param(b"bytes", "no JSON representation", id="bytes"),
        pytest.param({1.5}, "no JSON representation", id="set"),
    ],
)
def test_canonicalize_rejects(value: object, message: str) -> None:
    with pytest.raises(CanonicalizationError, match=message):
        canonicalize(value)


def test_canonicalize_integers_and_literals() -> None:
    assert canonicalize([0, -0.0, 1, -1, 2**53, True, False, None]) == (
        b"[0,0,1,-1,9007199254740992,true,false,null]"
    )


def test_canonicalize_escapes_controls_only() -> None:
    text = '\x00\x1f\x7f\u2028\b\t\n\f\r"\\/'
    assert canonicalize(text) == (
        '"\\u0000\\u001f\x7f\u2028\\b\\t\\n\\f\\r\\"\\\\/"'.encode()
    )


def test_canonicalize_sorts_by_utf16_code_units() -> None:
    # U+FB33 is above the surrogates, so UTF-16 puts it after U+1F600 (a pair
    # starting 0xD83D), although its code point is smaller.
    assert canonicalize({"\ufb33": 1, "\U0001f600": 2}) == (
        '{"\U0001f600":2,"\ufb33":1}'.encode()
    )


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=["Cs"])),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(st.characters(exclude_categories=["Cs"]), max_size=8),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)


def _parse_int_as_double(text: str) -> int | float:
    # RFC 8785 parsers read every number as a double.  A large integer text such as
    # "61178286208908820" is the shortest form of a double, not an exact integer.
    value = int(text)
    return value if abs(value) <= 2**53 else float(text)


@given(json_values)
def test_canonicalize_round_trips(value: object) -> None:
    output = canonicalize(value)
    parsed = json.loads(output, parse_int=_parse_int_as_double)
    assert canonicalize(parsed) == output


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_serialize_number_round_trips(value: float) -> None:
    assert float(serialize_number(value)) == value


_JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(codec="utf-8"))
)
_JSON_VALUES = st.recursive(
    _JSON_LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(alphabet=st.characters(codec="utf-8")), inner, max_size=4
        )
    ),
    max_leaves=20,
)


@given(_JSON_VALUES)
def test_canonicalize_fast_path_matches_reference(value: object) -> None:
    try:
        expected = canonicalize_reference(value)
    except CanonicalizationError:
        with pytest.raises(CanonicalizationError):
            canonicalize(value)
        return
    assert canonicalize(value) == expected


@pytest.mark.parametrize(
    "case", VECTORS["objects"], ids=[case["id"] for case in VECTORS["objects"]]
)
def test_canonicalize_reference_rfc_examples(case: dict[str, str]) -> None:
    value = json.loads(case["input"])
    assert canonicalize(value) == canonicalize_reference(value)


@pytest.mark.parametrize(
    "value",
    [1.0, -0.0, 1e21, 1e-7, 2**53 + 2, {"\U0001f600": 1, "\uffff": 2}, "\ud800"],
    ids=["integral", "negative-zero", "1e21", "1e-7", "beyond-2-53", "non-bmp", "lone"],
)
def test_canonicalize_falls_back_on_unsafe(value: object) -> None:
    try:
        expected = canonicalize_reference(value)
    except CanonicalizationError:
        with pytest.raises(CanonicalizationError):
            canonicalize(value)
        return
    assert canonicalize(value) == expected


def _utf16_units(text: str) -> list[int]:
    units = []
    for char in text:
        point = ord(char)
        if point > 0xFFFF:
            point -= 0x10000
            units += [0xD800 + (point >> 10), 0xDC00 + (point & 0x3FF)]
        else:
            units.append(point)
    return units


def _es_number(value: float) -> str:
    """ECMA-262 Number::toString, from the shortest round-trip digits."""
    if value == 0:
        return "0"
    sign, value = ("-", -value) if value < 0 else ("", value)
    for precision in range(17):
        mantissa, exponent = f"{value:.{precision}e}".split("e")
        if float(f"{mantissa}e{exponent}") == value:
            break
    digits = mantissa.replace(".", "").rstrip("0")
    k, n = len(digits), int(exponent) + 1
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * -n + digits
    else:
        mark = "+" if n - 1 >= 0 else "-"
        tail = "." + digits[1:] if k > 1 else ""
        text = f"{digits[0]}{tail}e{mark}{abs(n - 1)}"
    return sign + text


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n",
            "\r": "\\r", "\t": "\\t"}  # fmt: skip


def _jcs(value: object) -> str:
    """RFC 8785 written from the RFC's text, independent of the module."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, int | float):
        return _es_number(float(value))
    if isinstance(value, str):
        return (
            '"'
            + "".join(
                _ESCAPES.get(char, f"\\u{ord(char):04x}" if char < " " else char)
                for char in value
            )
            + '"'
        )
    if isinstance(value, list):
        return "[" + ",".join(_jcs(item) for item in value) + "]"
    assert isinstance(value, dict)
    keys = sorted(value, key=_utf16_units)
    return "{" + ",".join(f"{_jcs(key)}:{_jcs(value[key])}" for key in keys) + "}"


ADVERSARIAL = [
    {"\U0001f600": 1, "\ufb33": 2, "\uffff": 3, "\ue000": 4, "a": 5},
    {"\U00010000": 1, "\ud7ff": 2, "\uff61": 3},
    {"\U0001f600\u00e9": 1, "\U0001f600": 2, "\u00e9\U0001f600": 3},
    "\u2028\u2029",
    "\x00\x01\x08\t\n\x0b\x0c\r\x1f \x7f\x80\x9f",
    '"\\/',
    -0.0,
    1e21,
    1e20,
    1e-6,
    1e-7,
    1.5e-7,
    5e-324,
    1.7976931348623157e308,
    2**53,
    -(2**53),
    2**53 - 1,
    2**53 + 2,
    2**60,
    1e16,
    123456789012345680000.0,
    333333333.3333333,
    [[], {}, [{}], {"": {}}, {"": []}],
]


@pytest.mark.parametrize("value", ADVERSARIAL, ids=[ascii(v)[:30] for v in ADVERSARIAL])
def test_canonicalize_matches_independent_encoder(value: object) -> None:
    assert canonicalize(value) == _jcs(value).encode("utf-8")


@pytest.mark.parametrize("value", ADVERSARIAL, ids=[ascii(v)[:30] for v in ADVERSARIAL])
def test_canonicalize_reference_matches_independent_encoder(value: object) -> None:
    assert canonicalize_reference(value) == _jcs(value).encode("utf-8")


@pytest.mark.parametrize("value", ADVERSARIAL, ids=[ascii(v)[:30] for v in ADVERSARIAL])
def test_event_canonical_matches_independent_encoder(value: object) -> None:
    event = AuditEvent("decision", "allow", "ok", details={"x": value}, time=1.5)
    assert event.canonical() == _jcs(event.to_dict()).encode("utf-8")


@pytest.mark.parametrize("value", ADVERSARIAL, ids=[ascii(v)[:30] for v in ADVERSARIAL])
def test_loads_round_trips_canonical_text(value: object) -> None:
    text = canonicalize(value)
    assert canonicalize(loads(text)) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("9007199254740991", 9007199254740991),
        ("-9007199254740991", -9007199254740991),
        ("9007199254740992", 9007199254740992.0),
        ("1152921504606847000", 2.0**60),
    ],
)
def test_loads_reads_integers_beyond_2_53_as_doubles(
    text: str, expected: float
) -> None:
    value = loads(text)
    assert (type(value), value) == (type(expected), expected)


@pytest.mark.parametrize(
    ("value", "point"),
    [("\ud800", "D800"), ({"\udfff": 1}, "DFFF"), ({"a": ["\udc00"]}, "DC00")],
    ids=["lone", "key", "nested"],
)
def test_event_canonical_rejects_lone_surrogate(value: object, point: str) -> None:
    event = AuditEvent("decision", "allow", "ok", details={"x": value}, time=1.5)
    with pytest.raises(AuditEventError) as caught:
        event.canonical()
    assert str(caught.value) == (
        f"Audit event cannot be encoded: String contains the lone surrogate U+{point}."
    )
