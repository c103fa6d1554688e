"""Conversions from verified access token claims to what enforcement needs."""

from __future__ import annotations

from collections.abc import Iterator

from agentiam.enforce.principal import Principal
from agentiam.tokens import AccessTokenClaims


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
