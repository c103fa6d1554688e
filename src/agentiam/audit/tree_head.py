"""Signed tree heads: a JWS (``typ`` ``tree-head+jwt``) over a size and a root.

Only ``agentiam.jose`` and the standard library are imported, so the SDK can
verify a head with the server's JWKS before it trusts a proof against it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from agentiam.audit.chain import b64url, hash_from_b64url
from agentiam.audit.errors import ProofError, TreeHeadError
from agentiam.jose import JOSEError, KeyLookup, SigningKey, sign_jws, verify_jws

TREE_HEAD_TYP: Final = "tree-head+jwt"
# The payload version; a new member or meaning gets a new version.
TREE_HEAD_VERSION: Final = 1
_CLAIMS: Final = frozenset({"ver", "iss", "tree_size", "root_hash", "timestamp"})


@dataclass(frozen=True, slots=True)
class TreeHead:
    """A signed statement that the log had ``size`` leaves with Merkle ``root``."""

    size: int
    root: bytes
    timestamp: float
    kid: str
    signature: str
    version: int = TREE_HEAD_VERSION

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON shape sent by ``GET /v1/audit/tree-heads/latest``."""
        return {
            "tree_size": self.size,
            "root_hash": b64url(self.root),
            "timestamp": self.timestamp,
            "kid": self.kid,
            "signature": self.signature,
            "version": self.version,
        }


def sign_tree_head(
    size: int, root: bytes, timestamp: float, key: SigningKey, *, issuer: str
) -> TreeHead:
    """Sign a tree head for ``size`` leaves with Merkle ``root``."""
    claims = {
        "ver": TREE_HEAD_VERSION,
        "iss": issuer,
        "tree_size": size,
        "root_hash": b64url(root),
        "timestamp": timestamp,
    }
    signature = sign_jws(claims, key, typ=TREE_HEAD_TYP)
    return TreeHead(size, root, timestamp, key.kid, signature, TREE_HEAD_VERSION)


def verify_tree_head(
    signature: str, keys: KeyLookup, *, issuer: str | None = None
) -> TreeHead:
    """Verify a signed tree head's JWS and return the head it states.

    Raises:
        TreeHeadError: the signature, type, key, version, issuer or a claim is
            invalid.
    """
    try:
        header, claims = verify_jws(signature, keys, typ=TREE_HEAD_TYP)
    except JOSEError as err:
        raise TreeHeadError(f"Tree head signature is invalid: {err}") from err
    return _head_from_claims(claims, header, signature, issuer)


def _head_from_claims(
    claims: Mapping[str, Any],
    header: Mapping[str, Any],
    signature: str,
    issuer: str | None,
) -> TreeHead:
    if set(claims) != _CLAIMS:
        raise TreeHeadError(
            f"Tree head claims are {sorted(claims)}; expected {sorted(_CLAIMS)}."
        )
    if claims["ver"] != TREE_HEAD_VERSION:
        raise TreeHeadError(f"Tree head version {claims['ver']!r} is not supported.")
    if issuer is not None and claims["iss"] != issuer:
        raise TreeHeadError(f"Tree head issuer {claims['iss']!r} is not {issuer!r}.")

    size = claims["tree_size"]
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise TreeHeadError(f"Tree head tree_size {size!r} is invalid.")
    timestamp = claims["timestamp"]
    if (
        isinstance(timestamp, bool)
        or not isinstance(timestamp, int | float)
        or not math.isfinite(timestamp)
    ):
        raise TreeHeadError(f"Tree head timestamp {timestamp!r} is invalid.")
    try:
        root = hash_from_b64url(claims["root_hash"], name="root_hash")
    except ProofError as err:
        raise TreeHeadError(str(err)) from err

    return TreeHead(size, root, float(timestamp), header["kid"], signature)
