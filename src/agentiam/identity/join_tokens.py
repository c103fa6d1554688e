"""One-time join tokens that let a root agent instance attest to its class."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import Connection, select, update

from agentiam.errors import InvalidRequestError
from agentiam.identity.errors import UnknownAgentClassError
from agentiam.identity.tables import agent_classes, join_tokens

# Marks the text as a join token, so that a leaked one is easy to recognise in a scan.
_TOKEN_PREFIX = "ajt_"  # noqa: S105 (a prefix, not a secret)


@dataclass(frozen=True, slots=True)
class IssuedJoinToken:
    """A join token as created: the token is shown once and never stored."""

    token: str
    agent_class: str
    expires_at: float


def hash_join_token(token: str) -> str:
    """Return the hex SHA-256 of a join token, the only form that is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_join_token_in(
    conn: Connection,
    agent_class: str,
    *,
    created_by: str,
    ttl: int,
    max_ttl: int,
    now: float,
) -> IssuedJoinToken:
    """Create a join token for a class, valid for ``ttl`` seconds.

    Raises:
        UnknownAgentClassError: no class has this name.
        InvalidRequestError: ``ttl`` is outside 1 to ``max_ttl`` seconds.
    """
    if not 1 <= ttl <= max_ttl:
        raise InvalidRequestError(
            f"Invalid ttl {str(ttl)[:32]}: expected 1 to {max_ttl} seconds."
        )
    known = conn.execute(
        select(agent_classes.c.name).where(agent_classes.c.name == agent_class)
    )
    if known.first() is None:
        raise UnknownAgentClassError(f"Agent class '{agent_class}' was not found.")

    token = _TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires_at = now + ttl
    conn.execute(
        join_tokens.insert().values(
            token_hash=hash_join_token(token),
            agent_class=agent_class,
            created_by=created_by,
            created_at=now,
            expires_at=expires_at,
            used_at=None,
        )
    )
    return IssuedJoinToken(token=token, agent_class=agent_class, expires_at=expires_at)


def consume_join_token_in(
    conn: Connection, token: str, *, agent_class: str, now: float
) -> bool:
    """Mark a join token used, once.

    The single conditional UPDATE makes consumption atomic: of two concurrent
    attestations with the same token, exactly one sees a changed row.

    Returns:
        True when the token existed for this class, was unexpired and unused.
    """
    result = conn.execute(
        update(join_tokens)
        .where(
            join_tokens.c.token_hash == hash_join_token(token),
            join_tokens.c.agent_class == agent_class,
            join_tokens.c.used_at.is_(None),
            join_tokens.c.expires_at > now,
        )
        .values(used_at=now)
    )
    return result.rowcount == 1
