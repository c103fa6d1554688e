"""Strict JSON: duplicates, non-finite numbers and deep nesting are rejected."""

from __future__ import annotations

import pytest

from agentiam import strict_json
from agentiam.strict_json import MAX_DEPTH, StrictJSONError


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
