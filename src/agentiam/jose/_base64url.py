"""Strict unpadded base64url (RFC 7515 section 2) for JWS parts and JWK members."""

from __future__ import annotations

import base64
import binascii

# The base64url alphabet is mapped onto the standard one. '+', '/' and '=' are not
# base64url, so they become '!', which strict decoding rejects like any other
# character outside the alphabet.
_TO_STANDARD = bytes.maketrans(b"-_+/=", b"+/!!!")
# The last character of a text whose length is 2 (or 3) modulo 4 carries 4 (or 2)
# bits beyond the data. Only these characters have those bits zero.
_LAST_OF_ONE_BYTE = frozenset("AQgw")
_LAST_OF_TWO_BYTES = frozenset("AEIMQUYcgkosw048")


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
    remainder = len(text) % 4
    if remainder == 1 or not text.isascii():
        return None
    if remainder == 2:
        if text[-1] not in _LAST_OF_ONE_BYTE:
            return None
        padding = b"=="
    elif remainder == 3:
        if text[-1] not in _LAST_OF_TWO_BYTES:
            return None
        padding = b"="
    else:
        padding = b""
    # Strict mode rejects every character outside the standard alphabet, so
    # whitespace and the '!' put in for '+', '/' and '=' fail here.
    standard = text.encode("ascii").translate(_TO_STANDARD) + padding
    try:
        return binascii.a2b_base64(standard, strict_mode=True)
    except binascii.Error:
        return None
