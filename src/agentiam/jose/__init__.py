"""Compact JWS, JWKs, RFC 7638 thumbprints and DPoP proofs, with no server dependency.

Only ES256 and EdDSA are supported, and verification rejects everything outside
strict allow-lists: see ``agentiam.jose.jws.verify_jws``.
"""

from __future__ import annotations

from agentiam.jose.dpop import (
    DPOP_TYP,
    DPoPProof,
    access_token_hash,
    create_dpop_proof,
    normalize_htu,
    verify_dpop_proof,
    verify_dpop_proof_jkt,
)
from agentiam.jose.errors import (
    DPoPProofError,
    DPoPReplayError,
    ForbiddenHeaderError,
    InvalidJWKError,
    InvalidSignatureError,
    InvalidTypeError,
    JOSEError,
    JWENotAcceptedError,
    MalformedJWSError,
    ReplayCacheFullError,
    UnknownKeyError,
    UnsupportedAlgorithmError,
)
from agentiam.jose.jws import (
    DEFAULT_HEADER,
    KeyLookup,
    sign_jws,
    unverified_header,
    verify_jws,
)
from agentiam.jose.keys import (
    ALLOWED_ALGORITHMS,
    SigningKey,
    VerificationKey,
    jwk_thumbprint,
)
from agentiam.jose.replay import ReplayCache

__all__ = [
    "ALLOWED_ALGORITHMS",
    "DEFAULT_HEADER",
    "DPOP_TYP",
    "DPoPProof",
    "DPoPProofError",
    "DPoPReplayError",
    "ForbiddenHeaderError",
    "InvalidJWKError",
    "InvalidSignatureError",
    "InvalidTypeError",
    "JOSEError",
    "JWENotAcceptedError",
    "KeyLookup",
    "MalformedJWSError",
    "ReplayCache",
    "ReplayCacheFullError",
    "SigningKey",
    "UnknownKeyError",
    "UnsupportedAlgorithmError",
    "VerificationKey",
    "access_token_hash",
    "create_dpop_proof",
    "jwk_thumbprint",
    "normalize_htu",
    "sign_jws",
    "unverified_header",
    "verify_dpop_proof",
    "verify_dpop_proof_jkt",
    "verify_jws",
]
