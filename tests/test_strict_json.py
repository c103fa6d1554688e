"""Strict JSON: duplicates, non-finite or huge numbers, lone surrogates, nesting."""

from __future__ import annotations

import pytest

from agentiam import strict_json
from agentiam.strict_json import MAX_DEPTH, MAX_INTEGER, StrictJSONError


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"a": 1, "a": 2}', "JSON member 'a' is duplicated"),
        ('{"iat": NaN}', "JSON constant 'NaN' is not allowed"),
        ('{"iat": Infinity}', "JSON constant 'Infinity' is not allowed"),
        ('{"iat": -Infinity}', "JSON constant '-Infinity' is not allowed"),
        ('{"exp": 1e400}', "JSON number '1e400' is out of range"),
        ("[" * 5000 + "]" * 5000, "body nests too deeply"),
        ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "body nests deeper than 64"),
        (b"\xff", "body is not valid UTF-8 JSON"),
        ("{", "body is not valid UTF-8 JSON"),
    ],
    ids=[
        "duplicate",
        "nan",
        "infinity",
        "minus-infinity",
        "overflow",
        "recursion",
        "depth",
        "utf8",
        "syntax",
    ],
)
def test_loads_rejects(text: str | bytes, message: str) -> None:
    with pytest.raises(StrictJSONError) as caught:
        strict_json.loads(text, what="body")
    assert message in str(caught.value)


def test_loads_accepts_max_depth() -> None:
    text = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    value = strict_json.loads(text)
    assert isinstance(value, list)


def test_loads_plain_values() -> None:
    assert strict_json.loads('{"a": [1, 2.5, "x", null, true]}') == {
        "a": [1, 2.5, "x", None, True]
    }


RANGE = "integers must be between -(2**53 - 1) and 2**53 - 1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '{"iat": 1' + "0" * 400 + "}",
            f"JSON number '10000000000000000000...' (401 digits) in member 'iat' "
            f"is out of range: {RANGE}",
        ),
        (
            '{"a": [1, {"b": -' + "9" * 5001 + "}]}",
            f"JSON number '-9999999999999999999...' (5001 digits) in member "
            f"'a[1].b' is out of range: {RANGE}",
        ),
        (
            "[9007199254740992]",
            f"JSON number '9007199254740992' at '[0]' is out of range: {RANGE}",
        ),
        ("-9007199254740992", "JSON number '-9007199254740992' is out of range"),
    ],
    ids=["401-digits", "5001-digits", "just-above", "just-below"],
)
def test_loads_rejects_integer_out_of_range(text: str, message: str) -> None:
    with pytest.raises(StrictJSONError) as caught:
        strict_json.loads(text.encode())
    assert str(caught.value).startswith(message)


def test_loads_accepts_integer_range() -> None:
    text = f'{{"a": {MAX_INTEGER}, "b": -{MAX_INTEGER}, "c": 0}}'
    assert strict_json.loads(text) == {"a": MAX_INTEGER, "b": -MAX_INTEGER, "c": 0}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            b'{"login": "alice", "password": "x\\udfff"}',
            "JSON string in member 'password' has the lone surrogate U+DFFF: "
            "strings must be valid Unicode",
        ),
        (
            b'{"login": "\\uD800"}',
            "JSON string in member 'login' has the lone surrogate U+D800: "
            "strings must be valid Unicode",
        ),
        (
            b'{"a": ["\\ude00\\ud83d"]}',
            "JSON string in member 'a[0]' has the lone surrogate U+DE00: "
            "strings must be valid Unicode",
        ),
        (
            b'{"\\ud800": 1}',
            "JSON string has the lone surrogate U+D800: strings must be valid Unicode",
        ),
        (
            '"\ud800"',
            "JSON string has the lone surrogate U+D800: strings must be valid Unicode",
        ),
    ],
    ids=["low-alone", "high-alone", "reversed-pair", "member-name", "literal"],
)
def test_loads_rejects_lone_surrogate(text: str | bytes, message: str) -> None:
    with pytest.raises(StrictJSONError) as caught:
        strict_json.loads(text)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (b'"\\ud83d\\ude00"', "\U0001f600"),
        (b'"\\\\ud800"', "\\ud800"),
        ('"\u00e9"', "\u00e9"),
    ],
    ids=["pair", "escaped-backslash", "non-ascii"],
)
def test_loads_accepts_valid_unicode(text: str | bytes, value: str) -> None:
    assert strict_json.loads(text) == value
