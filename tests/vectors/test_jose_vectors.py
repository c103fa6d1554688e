"""Standard test vectors for JWK thumbprints and Ed25519 JWS."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from agentiam.jose import InvalidJWKError, SigningKey, VerificationKey, jwk_thumbprint
from agentiam.jose._base64url import b64url_decode, b64url_encode
from agentiam.jose.jws import sign_bytes, verify_signature

VECTORS = Path(__file__).parent


def load(name: str) -> dict[str, Any]:
    return json.loads((VECTORS / name).read_text())


def test_rfc7638_rsa_thumbprint() -> None:
    vector = load("rfc7638_thumbprint.json")
    assert jwk_thumbprint(vector["jwk"]) == vector["thumbprint"]


def test_rfc8037_public_key_from_private() -> None:
    vector = load("rfc8037_ed25519.json")
    d = b64url_decode(vector["private_jwk"]["d"])
    assert d is not None
    private_key = ed25519.Ed25519PrivateKey.from_private_bytes(d)
    raw = private_key.public_key().public_bytes_raw()
    assert b64url_encode(raw) == vector["public_jwk"]["x"]


def test_rfc8037_thumbprint() -> None:
    vector = load("rfc8037_ed25519.json")
    assert jwk_thumbprint(vector["public_jwk"]) == vector["thumbprint"]


def test_rfc8037_signature() -> None:
    vector = load("rfc8037_ed25519.json")
    d = b64url_decode(vector["private_jwk"]["d"])
    assert d is not None
    key = SigningKey(
        "rfc8037", "EdDSA", ed25519.Ed25519PrivateKey.from_private_bytes(d)
    )
    header_part = b64url_encode(vector["protected_header"].encode())
    payload_part = b64url_encode(vector["payload"].encode())
    signing_input = f"{header_part}.{payload_part}"

    signature = sign_bytes(key, signing_input.encode())

    assert f"{signing_input}.{b64url_encode(signature)}" == vector["jws"]


def test_rfc8037_verification() -> None:
    vector = load("rfc8037_ed25519.json")
    key = VerificationKey.from_jwk(vector["public_jwk"])
    header_part, payload_part, signature_part = vector["jws"].split(".")
    signature = b64url_decode(signature_part)
    assert signature is not None
    signing_input = f"{header_part}.{payload_part}".encode()

    assert key.kid == vector["thumbprint"]
    assert verify_signature("EdDSA", key.public_key, signing_input, signature)
    assert not verify_signature(
        "EdDSA", key.public_key, signing_input + b"x", signature
    )


def test_rfc8037_private_jwk_rejected() -> None:
    vector = load("rfc8037_ed25519.json")
    with pytest.raises(InvalidJWKError) as info:
        VerificationKey.from_jwk(vector["private_jwk"])
    assert str(info.value) == "JWK must be public but has member 'd'"
