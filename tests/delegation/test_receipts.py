"""Tests of consent receipts: signature, hash, and tampering."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from agentiam.delegation.receipts import (
    ConsentReceipt,
    ReceiptError,
    receipt_hash,
    sign_receipt,
    verify_receipt,
)
from agentiam.jose import SigningKey, VerificationKey, sign_jws, unverified_header

KEY = SigningKey.generate("ES256")
RECEIPT = ConsentReceipt(
    issuer="http://127.0.0.1:8800",
    issued_at=1_800_000_000,
    receipt_id="rcp_1",
    human="usr_alice",
    grant_id="grt_1",
    agent_class="support-orchestrator",
    scopes=("refunds", "tickets"),
    audiences=("https://support.example/api",),
    authorization_details=({"type": "refund", "max_amount": "100"},),
    max_depth=2,
    grant_expires_at=1_800_001_800,
    method="ciba",
    auth_req_id="ab" * 32,
    binding_message="Work ticket T-1",
    approved_at=1_800_000_000,
)


def lookup(kid: str) -> VerificationKey | None:
    return KEY.verification_key() if kid == KEY.kid else None


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_receipt_round_trip() -> None:
    token, digest = sign_receipt(RECEIPT, KEY)

    assert unverified_header(token) == {
        "alg": "ES256",
        "kid": KEY.kid,
        "typ": "consent+jwt",
    }
    assert verify_receipt(token, lookup, expected_hash=digest) == RECEIPT


def test_receipt_claims_follow_contract() -> None:
    claims = RECEIPT.to_dict()

    assert set(claims) == {
        "ver",
        "iss",
        "iat",
        "jti",
        "sub",
        "grant_id",
        "agent_class",
        "scope",
        "audiences",
        "authorization_details",
        "max_depth",
        "grant_exp",
        "method",
        "auth_req_id",
        "binding_message",
        "approved_at",
    }
    assert claims["ver"] == 1
    assert claims["scope"] == "refunds tickets"


def test_receipt_hash_is_sha256_of_ascii() -> None:
    token, digest = sign_receipt(RECEIPT, KEY)

    assert digest == b64(hashlib.sha256(token.encode("ascii")).digest())
    assert receipt_hash(token) == digest
    assert len(digest) == 43


def test_tampered_receipt_fails() -> None:
    token, _ = sign_receipt(RECEIPT, KEY)
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["scope"] = "refunds tickets admin"
    forged = ".".join([header, b64(json.dumps(claims).encode()), signature])

    # With the forged receipt's own hash the signature check fails.
    with pytest.raises(ReceiptError, match="Invalid consent receipt signature"):
        verify_receipt(forged, lookup, expected_hash=receipt_hash(forged))


def test_receipt_with_other_hash_fails() -> None:
    token, _ = sign_receipt(RECEIPT, KEY)
    other, other_hash = sign_receipt(RECEIPT, KEY)

    with pytest.raises(ReceiptError) as caught:
        verify_receipt(token, lookup, expected_hash=other_hash)

    assert str(caught.value) == "The consent receipt does not match the expected hash."
    assert verify_receipt(other, lookup, expected_hash=other_hash) == RECEIPT


def test_receipt_from_unknown_key_fails() -> None:
    token, digest = sign_receipt(RECEIPT, SigningKey.generate("ES256"))

    with pytest.raises(ReceiptError, match="Invalid consent receipt signature"):
        verify_receipt(token, lookup, expected_hash=digest)


def test_access_token_typ_is_not_a_receipt() -> None:
    token = sign_jws(RECEIPT.to_dict(), KEY, typ="at+jwt")

    with pytest.raises(ReceiptError, match="Invalid consent receipt signature"):
        verify_receipt(token, lookup, expected_hash=receipt_hash(token))


def test_receipt_claims_are_type_checked() -> None:
    claims = RECEIPT.to_dict()
    claims["max_depth"] = True

    with pytest.raises(ReceiptError) as caught:
        ConsentReceipt.from_dict(claims)

    assert str(caught.value) == (
        "Invalid consent receipt claim 'max_depth': expected int."
    )


def test_receipt_other_version_fails() -> None:
    claims = RECEIPT.to_dict() | {"ver": 2}

    with pytest.raises(ReceiptError, match="Unsupported consent receipt version '2'"):
        ConsentReceipt.from_dict(claims)
