"""The hash chain over the audit log's leaves, and base64url helpers.

``chain_hash[seq] = SHA-256(chain_hash[seq - 1] || leaf_hash[seq])`` with 32 zero
bytes before the first event.  These hash inputs must never change, because every
stored chain hash depends on them.  Standard library only, for the SDK.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Final

from agentiam.audit.errors import ProofError

GENESIS_CHAIN_HASH: Final = bytes(32)


def next_chain_hash(previous: bytes, leaf: bytes) -> bytes:
    """Return the chain hash of a leaf that follows the chain hash ``previous``."""
    return hashlib.sha256(previous + leaf).digest()


_TO_URLSAFE: Final = bytes.maketrans(b"+/", b"-_")


def b64url(data: bytes) -> str:
    """Encode bytes as unpadded base64url (RFC 4648 section 5)."""
    # The same bytes as base64.urlsafe_b64encode, in fewer steps: verifiers call
    # this twice for every event.
    encoded = binascii.b2a_base64(data, newline=False)
    return encoded.rstrip(b"=").translate(_TO_URLSAFE).decode("ascii")


def hash_from_b64url(text: str, *, name: str = "hash") -> bytes:
    """Decode an unpadded base64url SHA-256 hash.

    Raises:
        ProofError: the text is not unpadded base64url or not 32 bytes long.
    """
    if not isinstance(text, str) or "=" in text or len(text) != 43:
        raise ProofError(f"{name} {text!r} is not a base64url SHA-256 hash.")
    try:
        value = base64.urlsafe_b64decode(text + "=")
    except (binascii.Error, ValueError) as err:
        raise ProofError(f"{name} {text!r} is not a base64url SHA-256 hash.") from err
    # Reject non-canonical encodings whose unused low bits are set.
    if b64url(value) != text:
        raise ProofError(f"{name} {text!r} is not a base64url SHA-256 hash.")
    return value
