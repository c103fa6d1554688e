"""Conversions from verified access token claims to what enforcement needs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from agentiam.enforce.principal import Principal
from agentiam.jose import access_token_hash
from agentiam.tokens import AccessTokenClaims


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """A verified access token and what every request with it needs, made once.

    The token cache stores these, so a request with a cached token builds no
    Principal, hashes no token for ``ath`` and collects no revocation ids.

    Attributes:
        claims: the verified claims.
        principal: the Principal handed to the application.
        revocation_ids: every id whose revocation kills the token.
        ath: the DPoP ``ath`` that proofs presented with the token must carry.
        record_fields: the members of a decision record that name the caller.
    """

    claims: AccessTokenClaims
    principal: Principal
    revocation_ids: tuple[str, ...]
    ath: str
    record_fields: MappingProxyType[str, Any]


def verified_token(token: str, claims: AccessTokenClaims) -> VerifiedToken:
    """Derive the per-request values of a token whose signature and claims verified."""
    principal = principal_of(claims)
    return VerifiedToken(
        claims=claims,
        principal=principal,
        revocation_ids=tuple(revocation_ids(claims)),
        ath=access_token_hash(token),
        record_fields=record_fields(principal),
    )


def principal_of(claims: AccessTokenClaims) -> Principal:
    """Build the Principal of a verified access token."""
    actors = claims.actors or (claims.client_id,)
    task = claims.task
    return Principal(
        human=claims.sub,
        client_id=claims.client_id,
        actors=actors,
        task_id=task.id if task is not None else None,
        task_path=task.path if task is not None else (),
        grant_id=claims.grant.id,
        receipt_hash=claims.grant.receipt_hash,
        scopes=claims.scopes,
        authorization_details=claims.authorization_details or (),
        jti=claims.jti,
        exp=claims.exp,
    )


NO_CALLER: MappingProxyType[str, Any] = MappingProxyType(
    {
        "human": None,
        "actors": (),
        "task_path": (),
        "grant_id": None,
        "receipt_hash": None,
        "jti": None,
    }
)


def record_fields(principal: Principal | None) -> MappingProxyType[str, Any]:
    """Return the decision record members that name the caller, null when unknown.

    The values are immutable (tuples encode as JSON arrays), so one mapping is
    shared by every record of the token.
    """
    if principal is None:
        return NO_CALLER
    return MappingProxyType(
        {
            "human": principal.human,
            "actors": principal.actors,
            "task_path": principal.task_path,
            "grant_id": principal.grant_id,
            "receipt_hash": principal.receipt_hash,
            "jti": principal.jti,
        }
    )


def revocation_ids(claims: AccessTokenClaims) -> Iterator[str]:
    """Yield every id whose revocation kills the token.

    The rule of the server's revocation set: the grant id, each task path id, the
    client id and each actor in the chain, the token's jti and each jti it was
    exchanged from.
    """
    yield claims.grant.id
    if claims.task is not None:
        yield from claims.task.path
    yield claims.client_id
    yield from claims.actors
    yield claims.jti
    yield from claims.derived_from
