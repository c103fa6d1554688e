"""Verifiers for access tokens, JWT-SVIDs and session tokens.

Each verifier checks, in order: the JWS (shape, ``alg``, header members, ``typ``,
``kid`` and signature) through ``agentiam.jose``, the claim types and ``ver``,
``iss``, ``aud``, and the times ``exp``, ``nbf`` and ``iat`` with a leeway.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from agentiam import jose
from agentiam.jose import KeyLookup
from agentiam.jose.keys import VerificationKey
from agentiam.tokens.cache import VerifiedTokenCache
from agentiam.tokens.claims import AccessTokenClaims, SessionClaims, SVIDClaims
from agentiam.tokens.errors import (
    ForbiddenTokenHeaderError,
    InvalidTokenSignatureError,
    MalformedTokenError,
    TokenError,
    TokenExpiredError,
    TokenIssuedInFutureError,
    TokenNotYetValidError,
    UnknownTokenKeyError,
    UnsupportedTokenAlgorithmError,
    WrongAudienceError,
    WrongIssuerError,
    WrongTokenTypeError,
)

ACCESS_TOKEN_TYP = "at+jwt"  # noqa: S105 - a media type, not a secret
SVID_TYP = "JWT"
SESSION_TYP = "session+jwt"
DEFAULT_LEEWAY = 30.0

C = TypeVar("C")

# Each JOSE failure becomes the TokenError leaf with the same meaning.
_JOSE_TO_TOKEN_ERROR: tuple[tuple[type[jose.JOSEError], type[TokenError]], ...] = (
    (jose.MalformedJWSError, MalformedTokenError),
    (jose.UnsupportedAlgorithmError, UnsupportedTokenAlgorithmError),
    (jose.ForbiddenHeaderError, ForbiddenTokenHeaderError),
    (jose.InvalidTypeError, WrongTokenTypeError),
    (jose.UnknownKeyError, UnknownTokenKeyError),
    (jose.InvalidSignatureError, InvalidTokenSignatureError),
)


def _verify_jws(token: str, keys: KeyLookup, typ: str) -> dict[str, Any]:
    """Verify the JWS and return the payload, turning JOSE errors into TokenErrors."""
    try:
        _, payload = jose.verify_jws(token, keys, typ=typ)
    except jose.JOSEError as err:
        for jose_class, token_class in _JOSE_TO_TOKEN_ERROR:
            if isinstance(err, jose_class):
                raise token_class(str(err)) from err
        raise TokenError(str(err)) from err
    return payload


def _verified_claims(
    token: str,
    keys: KeyLookup,
    typ: str,
    parse: Callable[[dict[str, Any]], C],
    cache: VerifiedTokenCache[C] | None,
) -> C:
    """Verify the JWS and parse its claims, or take both from ``cache``."""
    if cache is None:
        return parse(_verify_jws(token, keys, typ))
    cached = cache.get(token, keys)
    if cached is not None:
        return cached

    used: list[VerificationKey] = []

    def recording_lookup(kid: str) -> VerificationKey | None:
        key = keys(kid)
        if key is not None:
            used.append(key)
        return key

    claims = parse(_verify_jws(token, recording_lookup, typ))
    cache.put(token, used[-1], claims)
    return claims


def _check_issuer(actual: str, issuer: str) -> None:
    if actual != issuer:
        raise WrongIssuerError(f"Token iss {actual!r} is not the expected {issuer!r}")


def _check_audience(audiences: tuple[str, ...], audience: str) -> None:
    if audience not in audiences:
        raise WrongAudienceError(
            f"Token aud {list(audiences)!r} does not contain {audience!r}"
        )


def _check_times(
    *, exp: float, iat: float, nbf: float | None, now: float, leeway: float
) -> None:
    """Check ``exp``, ``nbf`` and ``iat`` against ``now`` with ``leeway`` seconds."""
    if now >= exp + leeway:
        raise TokenExpiredError(
            f"Token expired at {exp}, now is {now:.0f} (leeway {leeway:g} s)"
        )
    if nbf is not None and nbf > now + leeway:
        raise TokenNotYetValidError(
            f"Token is not valid before {nbf}, now is {now:.0f} (leeway {leeway:g} s)"
        )
    if iat > now + leeway:
        raise TokenIssuedInFutureError(
            f"Token iat {iat} is in the future, now is {now:.0f} (leeway {leeway:g} s)"
        )


def verify_access_token(
    token: str,
    keys: KeyLookup,
    *,
    issuer: str,
    audience: str | None,
    now: float,
    leeway: float = DEFAULT_LEEWAY,
    cache: VerifiedTokenCache[AccessTokenClaims] | None = None,
) -> AccessTokenClaims:
    """Verify a delegated access token (``typ`` ``at+jwt``) and return its claims.

    Args:
        audience: the audience that ``aud`` must contain, or None to skip the
            check (only for the issuer itself, which accepts any of its tokens).
        cache: skips the signature check for a token it holds (see
            ``VerifiedTokenCache``); the other checks run on every call.

    Raises:
        TokenError: a subclass naming the check that failed.
    """
    claims = _verified_claims(
        token, keys, ACCESS_TOKEN_TYP, AccessTokenClaims.from_dict, cache
    )
    _check_issuer(claims.iss, issuer)
    if audience is not None:
        _check_audience(claims.aud, audience)
    _check_times(exp=claims.exp, iat=claims.iat, nbf=claims.nbf, now=now, leeway=leeway)
    return claims


def verify_svid(
    token: str,
    keys: KeyLookup,
    *,
    issuer: str,
    now: float,
    leeway: float = DEFAULT_LEEWAY,
    cache: VerifiedTokenCache[SVIDClaims] | None = None,
) -> SVIDClaims:
    """Verify a JWT-SVID (``typ`` ``JWT``, ``aud`` containing the issuer).

    ``cache`` works as for ``verify_access_token``.

    Raises:
        TokenError: a subclass naming the check that failed.
    """
    claims = _verified_claims(token, keys, SVID_TYP, SVIDClaims.from_dict, cache)
    _check_issuer(claims.iss, issuer)
    _check_audience(claims.aud, issuer)
    _check_times(exp=claims.exp, iat=claims.iat, nbf=None, now=now, leeway=leeway)
    return claims


def verify_session_token(
    token: str,
    keys: KeyLookup,
    *,
    issuer: str,
    now: float,
    leeway: float = DEFAULT_LEEWAY,
) -> SessionClaims:
    """Verify a human session token (``typ`` ``session+jwt``, ``aud`` the issuer).

    Raises:
        TokenError: a subclass naming the check that failed.
    """
    claims = SessionClaims.from_dict(_verify_jws(token, keys, SESSION_TYP))
    _check_issuer(claims.iss, issuer)
    _check_audience(claims.aud, issuer)
    _check_times(exp=claims.exp, iat=claims.iat, nbf=None, now=now, leeway=leeway)
    return claims
