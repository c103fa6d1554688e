"""Check that the reference peer issues ES256-signed JWT access tokens.

The check uses ``cryptography`` directly rather than agentiam's verifiers, so the
peer half of the benchmark does not depend on agentiam's code.
"""

from __future__ import annotations

import base64
import json
import urllib.request
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

PEER_CLIENT_ID = "bench-client"
PEER_CLIENT_SECRET = "bench-secret"  # noqa: S105 (benchmark-only client on loopback)
PEER_SCOPE = "api:read"
PEER_RESOURCE = "https://api.bench.example"


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def basic_authorization() -> str:
    credentials = f"{PEER_CLIENT_ID}:{PEER_CLIENT_SECRET}".encode()
    return "Basic " + base64.b64encode(credentials).decode()


def token_request_body() -> str:
    return "grant_type=client_credentials&scope=api%3Aread"


def token_request_headers() -> dict[str, str]:
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "Accept": "application/json",
        "Authorization": basic_authorization(),
    }


def fetch_json(request: urllib.request.Request | str) -> Any:
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        return json.load(response)


def request_token(issuer: str) -> dict[str, Any]:
    request = urllib.request.Request(  # noqa: S310 (loopback URL)
        f"{issuer}/token",
        data=token_request_body().encode(),
        headers=token_request_headers(),
        method="POST",
    )
    response: dict[str, Any] = fetch_json(request)
    return response


def verify_es256_jwt(
    token: str, jwks: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify the ES256 signature of a compact JWS against a JWKS.

    Returns the header and the claims. Raises ValueError when the token is not an
    ES256 JWT signed by a key in the set.
    """
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError(f"token has {len(parts)} parts, expected 3 for a compact JWS")
    header = json.loads(b64url_decode(parts[0]))
    if header.get("alg") != "ES256":
        raise ValueError(f"token alg is {header.get('alg')!r}, expected 'ES256'")
    keys = [k for k in jwks.get("keys", []) if k.get("kid") == header.get("kid")]
    if not keys:
        raise ValueError(f"token kid {header.get('kid')!r} is not in the peer's JWKS")
    jwk = keys[0]
    public_key = ec.EllipticCurvePublicNumbers(
        int.from_bytes(b64url_decode(jwk["x"]), "big"),
        int.from_bytes(b64url_decode(jwk["y"]), "big"),
        ec.SECP256R1(),
    ).public_key()
    raw = b64url_decode(parts[2])
    if len(raw) != 64:
        raise ValueError(f"ES256 signature is {len(raw)} bytes, expected 64")
    signature = encode_dss_signature(
        int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    )
    signing_input = f"{parts[0]}.{parts[1]}".encode()
    try:
        public_key.verify(signature, signing_input, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as error:
        raise ValueError("token signature is invalid for the peer's key") from error
    claims = json.loads(b64url_decode(parts[1]))
    return header, claims


def check_peer(issuer: str) -> dict[str, Any]:
    """Request one token from the peer and verify it; return what was checked."""
    response = request_token(issuer)
    jwks = fetch_json(f"{issuer}/jwks")
    header, claims = verify_es256_jwt(response["access_token"], jwks)
    if claims.get("aud") != PEER_RESOURCE:
        raise ValueError(
            f"token aud is {claims.get('aud')!r}, expected {PEER_RESOURCE}"
        )
    return {
        "header": header,
        "claims": sorted(claims),
        "token_type": response.get("token_type"),
        "expires_in": response.get("expires_in"),
        "token_bytes": len(response["access_token"]),
    }
