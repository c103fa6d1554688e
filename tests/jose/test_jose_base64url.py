"""Strict unpadded base64url decoding, checked against a round-trip reference."""

from __future__ import annotations

import base64
import binascii
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentiam.jose._base64url import b64url_decode, b64url_encode

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def reference_decode(text: str) -> bytes | None:
    """Decode by the definition: accept only what encodes back to ``text``."""
    if re.fullmatch(r"[A-Za-z0-9_-]*", text) is None or len(text) % 4 == 1:
        return None
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    return data if b64url_encode(data) == text else None


@given(st.binary(max_size=200))
def test_decode_round_trip(data: bytes) -> None:
    assert b64url_decode(b64url_encode(data)) == data


@given(st.text(alphabet=ALPHABET + "+/= .\n\u00e9", max_size=16))
def test_decode_matches_reference(text: str) -> None:
    assert b64url_decode(text) == reference_decode(text)


@pytest.mark.parametrize(
    "text",
    ["QR", "QUF", "QUFB=", "QQ==", "Q", "QUFBQ", "QU+B", "QU/B", "QU B", "QUF\u00e9"],
    ids=[
        "one-byte-bits-set",
        "two-bytes-bits-set",
        "padding",
        "double-padding",
        "length-1",
        "length-5",
        "plus",
        "slash",
        "space",
        "non-ascii",
    ],
)
def test_decode_rejects(text: str) -> None:
    assert b64url_decode(text) is None


@pytest.mark.parametrize(
    ("text", "data"),
    [("", b""), ("QQ", b"A"), ("QUE", b"AA"), ("QUFB", b"AAA"), ("-_8", b"\xfb\xff")],
)
def test_decode_accepts(text: str, data: bytes) -> None:
    assert b64url_decode(text) == data
