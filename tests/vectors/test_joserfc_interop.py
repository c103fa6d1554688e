"""Interoperability with joserfc, an independent JOSE implementation.

agentiam signs and verifies compact JWS with ``cryptography`` directly; these tests
check that what it writes verifies elsewhere and that what another library writes
verifies here.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from joserfc import jwk as joserfc_jwk
from joserfc import jws as joserfc_jws

from agentiam.jose import (
    ReplayCache,
    SigningKey,
    VerificationKey,
    jwk_thumbprint,
    sign_jws,
    verify_dpop_proof,
    verify_jws,
)

HTU = "https://as.example/token"

# joserfc 1.8 warns that "EdDSA" is deprecated by RFC 9864 in favour of the fully
# specified "Ed25519"; agentiam still writes "EdDSA", so the warning is expected.
ALGORITHMS = [
    "ES256",
    pytest.param(
        "EdDSA",
        marks=pytest.mark.filterwarnings("ignore::joserfc.errors.SecurityWarning"),
    ),
]


def imported(key: SigningKey, *, private: bool = False) -> Any:
    """Import ``key`` into joserfc, as its private key when ``private``."""
    if private:
        material: Any = key.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    else:
        material = key.public_jwk()
    if key.alg == "ES256":
        return joserfc_jwk.ECKey.import_key(material)
    return joserfc_jwk.OKPKey.import_key(material)


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_agentiam_jws_verifies_in_joserfc(alg: str) -> None:
    key = SigningKey.generate(alg)
    token = sign_jws({"sub": "alice", "n": 1}, key, typ="at+jwt")

    result = joserfc_jws.deserialize_compact(token, imported(key), algorithms=[alg])

    assert json.loads(result.payload) == {"sub": "alice", "n": 1}
    assert result.protected == {"alg": alg, "kid": key.kid, "typ": "at+jwt"}


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_joserfc_jws_verifies_in_agentiam(alg: str) -> None:
    key = SigningKey.generate(alg)
    header = {"alg": alg, "kid": key.kid, "typ": "at+jwt"}
    token = joserfc_jws.serialize_compact(
        header, b'{"sub":"alice"}', imported(key, private=True), algorithms=[alg]
    )
    keys = {key.kid: key.verification_key()}

    _, claims = verify_jws(token, keys.get, typ="at+jwt")

    assert claims == {"sub": "alice"}


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_thumbprints_agree(alg: str) -> None:
    key = SigningKey.generate(alg)
    assert jwk_thumbprint(key.public_jwk()) == imported(key).thumbprint()


def test_joserfc_dpop_proof_verifies() -> None:
    key = SigningKey.generate("ES256")
    public = {
        name: value for name, value in key.public_jwk().items() if name not in ("kid",)
    }
    header = {"alg": "ES256", "typ": "dpop+jwt", "jwk": public}
    now = time.time()
    payload = {"jti": "proof-1", "htm": "POST", "htu": HTU, "iat": int(now)}
    proof = joserfc_jws.serialize_compact(
        header,
        json.dumps(payload).encode(),
        imported(key, private=True),
        algorithms=["ES256"],
    )

    verified = verify_dpop_proof(
        proof, htm="POST", htu=HTU, now=now, replay=ReplayCache(10)
    )

    assert verified.jkt == VerificationKey.from_jwk(public).thumbprint()
