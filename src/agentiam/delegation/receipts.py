"""Consent receipts: the signed record of a human's approval of a grant.

A receipt is a compact JWS with ``typ`` ``consent+jwt`` signed by the server's active
key. Every token derived from the grant carries ``grant.receipt_hash``, the base64url
SHA-256 of the receipt's ASCII bytes, so a resource server or an auditor can tie an
action to the approval that allowed it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from agentiam.errors import AgentIAMError
from agentiam.jose import SigningKey, VerificationKey, sign_jws, verify_jws

RECEIPT_TYP = "consent+jwt"
RECEIPT_VERSION = 1


class ReceiptError(AgentIAMError):
    """A consent receipt is malformed, wrongly signed or does not match its hash."""


@dataclass(frozen=True, slots=True)
class ConsentReceipt:
    """The claims of a consent receipt.

    ``auth_req_id`` is the hex SHA-256 of the CIBA auth_req_id, never the secret
    itself: the server stores only the hash, and the receipt may be shown to auditors.
    """

    issuer: str
    issued_at: int
    receipt_id: str
    human: str
    grant_id: str
    agent_class: str
    scopes: tuple[str, ...]
    audiences: tuple[str, ...]
    authorization_details: tuple[dict[str, Any], ...]
    max_depth: int
    grant_expires_at: int
    method: str
    auth_req_id: str
    binding_message: str
    approved_at: int

    def to_dict(self) -> dict[str, Any]:
        """Return the JWT claims set of the receipt."""
        return {
            "ver": RECEIPT_VERSION,
            "iss": self.issuer,
            "iat": self.issued_at,
            "jti": self.receipt_id,
            "sub": self.human,
            "grant_id": self.grant_id,
            "agent_class": self.agent_class,
            "scope": " ".join(self.scopes),
            "audiences": list(self.audiences),
            "authorization_details": [dict(d) for d in self.authorization_details],
            "max_depth": self.max_depth,
            "grant_exp": self.grant_expires_at,
            "method": self.method,
            "auth_req_id": self.auth_req_id,
            "binding_message": self.binding_message,
            "approved_at": self.approved_at,
        }

    @classmethod
    def from_dict(cls, claims: Mapping[str, Any]) -> ConsentReceipt:
        """Build a receipt from its claims set.

        Raises:
            ReceiptError: a claim is missing, has the wrong type, or ``ver`` is not 1.
        """
        if claims.get("ver") != RECEIPT_VERSION:
            raise ReceiptError(
                f"Unsupported consent receipt version '{claims.get('ver')}'; "
                f"expected {RECEIPT_VERSION}."
            )

        details = _claim(claims, "authorization_details", list)
        if not all(isinstance(d, dict) for d in details):
            raise ReceiptError(
                "Invalid consent receipt claim 'authorization_details': "
                "expected an array of objects."
            )

        audiences = _claim(claims, "audiences", list)
        if not all(isinstance(a, str) for a in audiences):
            raise ReceiptError(
                "Invalid consent receipt claim 'audiences': expected strings."
            )

        return cls(
            issuer=_claim(claims, "iss", str),
            issued_at=_claim(claims, "iat", int),
            receipt_id=_claim(claims, "jti", str),
            human=_claim(claims, "sub", str),
            grant_id=_claim(claims, "grant_id", str),
            agent_class=_claim(claims, "agent_class", str),
            scopes=tuple(_claim(claims, "scope", str).split()),
            audiences=tuple(audiences),
            authorization_details=tuple(details),
            max_depth=_claim(claims, "max_depth", int),
            grant_expires_at=_claim(claims, "grant_exp", int),
            method=_claim(claims, "method", str),
            auth_req_id=_claim(claims, "auth_req_id", str),
            binding_message=_claim(claims, "binding_message", str),
            approved_at=_claim(claims, "approved_at", int),
        )


def _claim(claims: Mapping[str, Any], name: str, kind: type[Any]) -> Any:
    value = claims.get(name)

    # bool is a subclass of int, and a boolean max_depth or time is never valid.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ReceiptError(
            f"Invalid consent receipt claim '{name}': expected {kind.__name__}."
        )

    return value


def receipt_hash(receipt_jws: str) -> str:
    """Return the base64url (unpadded) SHA-256 of the receipt's compact JWS.

    The hash input is the ASCII bytes of the compact serialization. Tokens carry this
    value as ``grant.receipt_hash``, so this encoding must never change.
    """
    digest = hashlib.sha256(receipt_jws.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def sign_receipt(receipt: ConsentReceipt, key: SigningKey) -> tuple[str, str]:
    """Sign a receipt with the server's active key.

    Returns:
        The compact JWS and its receipt hash.
    """
    token = sign_jws(receipt.to_dict(), key, typ=RECEIPT_TYP)
    return token, receipt_hash(token)


def verify_receipt(
    receipt_jws: str,
    keys: Callable[[str], VerificationKey | None],
    *,
    expected_hash: str,
) -> ConsentReceipt:
    """Verify a receipt's signature and that it matches the hash a token carries.

    Args:
        receipt_jws: the compact JWS as stored with the grant.
        keys: looks up a verification key by ``kid`` (``KeyRing.lookup``).
        expected_hash: the ``grant.receipt_hash`` of a token or the stored hash.

    Raises:
        ReceiptError: the hash does not match, the signature or header is invalid, or
            the claims are malformed.
    """
    actual_hash = receipt_hash(receipt_jws) if receipt_jws.isascii() else ""
    if not hmac.compare_digest(actual_hash.encode(), expected_hash.encode()):
        raise ReceiptError("The consent receipt does not match the expected hash.")

    try:
        _header, claims = verify_jws(receipt_jws, keys, typ=RECEIPT_TYP)
    except AgentIAMError as err:
        raise ReceiptError(f"Invalid consent receipt signature: {err}") from err

    return ConsentReceipt.from_dict(claims)
