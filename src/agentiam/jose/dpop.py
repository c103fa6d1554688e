"""DPoP proofs (RFC 9449): creation by the agent and verification by a server."""

from __future__ import annotations

import functools
import hashlib
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from agentiam.jose._base64url import b64url_encode
from agentiam.jose.errors import (
    DPoPProofError,
    DPoPReplayError,
    InvalidSignatureError,
)
from agentiam.jose.jws import (
    _check_header,
    _decode_json_object,
    _decode_part,
    _parse_json_object,
    _split,
    sign_jws_with_header,
    verify_signature,
)
from agentiam.jose.keys import (
    ALLOWED_ALGORITHMS,
    SigningKey,
    VerificationKey,
    jwk_thumbprint,
    public_key_to_jwk,
)
from agentiam.jose.replay import ReplayCache
from agentiam.strict_json import MAX_INTEGER

DPOP_TYP = "dpop+jwt"
DPOP_HEADER: frozenset[str] = frozenset({"alg", "typ", "jwk"})
MAX_JTI_LENGTH = 256
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Proof headers checked before, by their base64url text. An agent sends the same
# header (alg, typ and its public jwk) with every proof, so the header parsing,
# the key import and the thumbprint are paid once per key, not once per proof.
# Reuse is sound because the decoding is canonical: equal texts are equal header
# bytes, and every header check depends only on those bytes and the algorithm
# allow-list, which is part of the key. Each proof's signature is still verified.
_HEADER_CACHE_SIZE = 4096
_MAX_CACHED_HEADER_LENGTH = 2048


@dataclass(frozen=True, slots=True)
class DPoPProof:
    """A verified DPoP proof: the key's thumbprint and JWK, and the claims checked."""

    jkt: str
    jti: str
    iat: float
    jwk: dict[str, str]
    htm: str
    htu: str
    ath: str | None
    nonce: str | None


def access_token_hash(access_token: str) -> str:
    """Return the ``ath`` value of a token: base64url SHA-256 of its ASCII text."""
    return b64url_encode(hashlib.sha256(access_token.encode("ascii")).digest())


@dataclass(frozen=True, slots=True)
class _ProofHeader:
    """A checked proof header: its alg, the imported jwk and the key's thumbprint."""

    alg: str
    key: VerificationKey
    jwk: dict[str, str]
    jkt: str


class _ProofHeaderCache:
    """A bounded LRU map from header text and algorithm allow-list to its check."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._items: OrderedDict[tuple[str, frozenset[str]], _ProofHeader] = (
            OrderedDict()
        )
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: tuple[str, frozenset[str]]) -> _ProofHeader | None:
        # A single dict lookup is atomic, so reads skip the lock. An entry that
        # another thread evicts in between is not moved. A plain try costs less
        # per request than entering contextlib.suppress.
        found = self._items.get(key)
        if found is not None:
            try:  # noqa: SIM105
                self._items.move_to_end(key)
            except KeyError:
                pass
        return found

    def put(self, key: tuple[str, frozenset[str]], value: _ProofHeader) -> None:
        if len(key[0]) > _MAX_CACHED_HEADER_LENGTH:
            return
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_header_cache = _ProofHeaderCache(_HEADER_CACHE_SIZE)


def normalize_htu(uri: str) -> str:
    """Normalize an HTTP URI for the ``htu`` comparison (RFC 9449 section 4.3).

    The query and fragment are dropped, the scheme and host are lowercased, a
    default port is removed and an empty path becomes '/'.
    """
    return _normalize_htu(uri)


@functools.lru_cache(maxsize=1024)
def _normalize_htu(uri: str) -> str:
    # Cached because a server compares the same few URIs on every request.
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError as err:
        raise DPoPProofError(f"DPoP htu {uri!r} is not a valid URI") from err

    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    return f"{scheme}://{host}{parts.path or '/'}"


def create_dpop_proof(
    key: SigningKey,
    *,
    htm: str,
    htu: str,
    now: float,
    access_token: str | None = None,
    nonce: str | None = None,
) -> str:
    """Create a DPoP proof for one request, signed by ``key``, its JWK in the header.

    The ``htu`` is sent without query and fragment, ``iat`` is ``now`` in whole
    seconds, and ``ath`` is added when an access token is given.
    """
    claims: dict[str, Any] = {
        "jti": b64url_encode(secrets.token_bytes(16)),
        "htm": htm,
        "htu": normalize_htu(htu),
        "iat": int(now),
    }
    if access_token is not None:
        claims["ath"] = access_token_hash(access_token)
    if nonce is not None:
        claims["nonce"] = nonce

    jwk = public_key_to_jwk(key.private_key.public_key())
    header = {"typ": DPOP_TYP, "jwk": jwk}
    return sign_jws_with_header(claims, key, header)


def _string_claim(claims: dict[str, Any], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value:
        raise DPoPProofError(f"DPoP proof claim {name!r} is missing or not a string")
    return value


def _check_time(iat: Any, *, now: float, max_age: float, leeway: float) -> float:
    if isinstance(iat, bool) or not isinstance(iat, (int, float)):
        raise DPoPProofError("DPoP proof claim 'iat' is missing or not a number")
    # Comparing first keeps float() below from overflowing on a huge integer; NaN
    # fails both comparisons and is rejected here too.
    if not -MAX_INTEGER <= iat <= MAX_INTEGER:
        raise DPoPProofError(
            f"DPoP proof claim 'iat' {_shown_number(iat)} is out of range: a "
            "NumericDate must be between -(2**53 - 1) and 2**53 - 1"
        )
    if iat > now + leeway:
        raise DPoPProofError(
            f"DPoP proof iat {iat} is in the future (now {now:.0f}, leeway {leeway} s)"
        )
    if iat < now - max_age:
        raise DPoPProofError(
            f"DPoP proof iat {iat} is older than {max_age} s (now {now:.0f})"
        )
    return float(iat)


def _shown_number(value: int | float) -> str:
    # str() of an integer past 4300 digits raises, so a long one is shown by size.
    if isinstance(value, int) and value.bit_length() > 64:
        return f"(an integer of {value.bit_length()} bits)"
    return repr(value)


def _proof_header(header_part: str, algorithms: frozenset[str]) -> _ProofHeader:
    """Check the proof header and import its ``jwk``, or take both from the cache."""
    cache_key = (header_part, algorithms)
    cached = _header_cache.get(cache_key)
    if cached is not None:
        return cached

    header = _decode_json_object(header_part, "header")
    alg = _check_header(
        header, typ=DPOP_TYP, algorithms=algorithms, allowed_header=DPOP_HEADER
    )
    jwk = header.get("jwk")
    if not isinstance(jwk, dict):
        raise DPoPProofError("DPoP proof header 'jwk' is missing or not an object")
    key = VerificationKey.from_jwk(jwk, kid="dpop")
    if key.alg != alg:
        raise DPoPProofError(f"DPoP proof alg {alg!r} does not match its jwk")

    jwk_public = public_key_to_jwk(key.public_key)
    checked = _ProofHeader(alg, key, jwk_public, jwk_thumbprint(jwk_public))
    _header_cache.put(cache_key, checked)
    return checked


def _verify_proof_signature(
    header_part: str, payload_part: str, signature_part: str, checked: _ProofHeader
) -> dict[str, Any]:
    """Check the proof's signature with its header key and return its claims."""
    payload = _decode_part(payload_part, "payload")
    signature = _decode_part(signature_part, "signature")
    # Both parts decoded as base64url, so they are ASCII and encode without a check.
    signing_input = f"{header_part}.{payload_part}".encode("ascii")
    if not verify_signature(
        checked.alg, checked.key.public_key, signing_input, signature
    ):
        raise InvalidSignatureError("DPoP proof signature is invalid for its jwk")
    return _parse_json_object(payload, "payload")


def verify_dpop_proof(
    proof: str,
    *,
    htm: str,
    htu: str,
    now: float,
    access_token: str | None = None,
    max_age: float = 60,
    replay: ReplayCache,
    leeway: float = 30,
    nonce: str | None = None,
    algorithms: frozenset[str] = ALLOWED_ALGORITHMS,
    expected_ath: str | None = None,
) -> DPoPProof:
    """Verify a DPoP proof for one request (RFC 9449 section 4.3).

    The checks run in this order:

    1. the JWS shape, ``typ`` ``dpop+jwt`` and ``alg``;
    2. the header members, which are only ``alg``, ``typ`` and a public ``jwk``;
    3. the signature by that jwk;
    4. ``htm``, and ``htu`` without query and fragment;
    5. ``iat`` no older than ``max_age`` and not later than ``now + leeway``;
    6. ``ath`` when an access token is given, ``nonce`` when one is expected;
    7. last the ``jti`` against ``replay``, so a rejected proof keeps its ``jti``.

    A caller that already holds ``access_token_hash(access_token)``, such as a
    resource server that caches verified tokens, passes it as ``expected_ath``
    instead of the token, and the check is the same.

    NOTE: an ``ath`` in a proof checked without an access token is not compared,
    because such a proof is sent to ``/token`` where no access token is bound.

    Raises:
        DPoPReplayError: the ``jti`` was already used.
        JOSEError: another subclass naming the check that failed.
        ValueError: both ``access_token`` and ``expected_ath`` are given.
    """
    if access_token is not None and expected_ath is not None:
        raise ValueError("pass access_token or expected_ath, not both")

    checked, claims, iat = _verify_proof(
        proof,
        htm=htm,
        htu=htu,
        now=now,
        max_age=max_age,
        replay=replay,
        leeway=leeway,
        nonce=nonce,
        algorithms=algorithms,
        access_token=access_token,
        expected_ath=expected_ath,
    )
    return DPoPProof(
        jkt=checked.jkt,
        jti=claims["jti"],
        iat=iat,
        jwk=dict(checked.jwk),
        htm=claims["htm"],
        htu=claims["htu"],
        ath=claims.get("ath"),
        nonce=claims.get("nonce"),
    )


def verify_dpop_proof_jkt(
    proof: str,
    *,
    htm: str,
    htu: str,
    now: float,
    expected_ath: str,
    max_age: float = 60,
    replay: ReplayCache,
    leeway: float = 30,
    algorithms: frozenset[str] = ALLOWED_ALGORITHMS,
) -> str:
    """Verify a DPoP proof presented with an access token and return its ``jkt``.

    The checks are those of ``verify_dpop_proof`` with ``expected_ath``. It is for
    a resource server that needs only the thumbprint to compare with the token's
    ``cnf.jkt``, and it builds no DPoPProof.

    Raises:
        DPoPReplayError: the ``jti`` was already used.
        JOSEError: another subclass naming the check that failed.
    """
    checked, _, _ = _verify_proof(
        proof,
        htm=htm,
        htu=htu,
        now=now,
        max_age=max_age,
        replay=replay,
        leeway=leeway,
        nonce=None,
        algorithms=algorithms,
        access_token=None,
        expected_ath=expected_ath,
    )
    return checked.jkt


def _verify_proof(
    proof: str,
    *,
    htm: str,
    htu: str,
    now: float,
    max_age: float,
    replay: ReplayCache,
    leeway: float,
    nonce: str | None,
    algorithms: frozenset[str],
    access_token: str | None,
    expected_ath: str | None,
) -> tuple[_ProofHeader, dict[str, Any], float]:
    """Run every check of ``verify_dpop_proof`` and return the header, claims, iat."""
    header_part, payload_part, signature_part = _split(proof)
    checked = _proof_header(header_part, algorithms)
    claims = _verify_proof_signature(header_part, payload_part, signature_part, checked)

    proof_htm = _string_claim(claims, "htm")
    if proof_htm != htm:
        raise DPoPProofError(f"DPoP proof htm {proof_htm!r} is not {htm!r}")
    proof_htu = _string_claim(claims, "htu")
    expected_htu = _normalize_htu(htu)
    if _normalize_htu(proof_htu) != expected_htu:
        raise DPoPProofError(
            f"DPoP proof htu {proof_htu!r} does not match {expected_htu!r}"
        )
    iat = _check_time(claims.get("iat"), now=now, max_age=max_age, leeway=leeway)
    if access_token is not None:
        expected_ath = access_token_hash(access_token)
    _check_ath(claims.get("ath"), expected_ath)

    proof_nonce = claims.get("nonce")
    if proof_nonce is not None and not isinstance(proof_nonce, str):
        raise DPoPProofError("DPoP proof claim 'nonce' is not a string")
    if nonce is not None and proof_nonce != nonce:
        raise DPoPProofError("DPoP proof 'nonce' is missing or not the expected nonce")

    jti = _string_claim(claims, "jti")
    if len(jti) > MAX_JTI_LENGTH:
        raise DPoPProofError(
            f"DPoP proof jti is longer than {MAX_JTI_LENGTH} characters"
        )
    # Keying by thumbprint too keeps one key's jti values from blocking another's.
    try:
        replay.check_and_add(f"{checked.jkt}:{jti}", iat + max_age + leeway, now)
    except DPoPReplayError as err:
        raise DPoPReplayError(f"DPoP proof jti {jti!r} was already used") from err
    return checked, claims, iat


def _check_ath(ath: Any, expected_ath: str | None) -> None:
    if expected_ath is not None:
        if ath is None:
            raise DPoPProofError("DPoP proof is missing 'ath' for the access token")
        # compare_digest raises TypeError on non-ASCII text, and ath is untrusted.
        if (
            not isinstance(ath, str)
            or not ath.isascii()
            or not secrets.compare_digest(ath, expected_ath)
        ):
            raise DPoPProofError("DPoP proof 'ath' does not match the access token")
    elif ath is not None and not isinstance(ath, str):
        raise DPoPProofError("DPoP proof claim 'ath' is not a string")
