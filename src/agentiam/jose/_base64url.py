"""Strict unpadded base64url (RFC 7515 section 2) for JWS parts and JWK members."""

from __future__ import annotations

import base64
import binascii
import re

_ALPHABET_RE = re.compile(r"[A-Za-z0-9_-]*")


def b64url_encode(data: bytes) -> str:
    """Encode bytes as unpadded base64url."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes | None:
    """Decode unpadded base64url, or return None when ``text`` is not canonical.

    Padding, '+', '/', whitespace and any other character are rejected. Trailing
    bits that the last character carries beyond the data must be zero, so each
    byte string has exactly one accepted encoding and a changed character can
    never decode to the same bytes.
    """
    if _ALPHABET_RE.fullmatch(text) is None or len(text) % 4 == 1:
        return None
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    if b64url_encode(data) != text:
        return None
    return data
