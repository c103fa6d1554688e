"""Grants: a human's approval for an agent class, stored with its consent receipt."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, RowMapping

from agentiam.delegation.grant_tables import grants


@dataclass(frozen=True, slots=True)
class Grant:
    """A stored grant: who approved what for which agent class, until when."""

    id: str
    user_id: str
    agent_class: str
    scopes: tuple[str, ...]
    audiences: tuple[str, ...]
    authorization_details: tuple[dict[str, Any], ...]
    max_depth: int
    expires_at: float
    receipt: str
    receipt_hash: str
    created_at: float
    revoked_at: float | None = None

    def is_active(self, now: float) -> bool:
        """Return whether the grant is neither revoked nor expired at ``now``."""
        return self.revoked_at is None and now < self.expires_at


def encode_strings(values: Sequence[str]) -> str:
    """Encode a set of strings as the sorted JSON array the tables store."""
    return json.dumps(sorted(set(values)))


def decode_strings(text: str) -> tuple[str, ...]:
    """Decode a JSON array of strings from a table column."""
    return tuple(json.loads(text))


def encode_details(details: Sequence[dict[str, Any]]) -> str:
    """Encode RFC 9396 authorization_details as a JSON array, in request order."""
    return json.dumps(list(details), separators=(",", ":"), sort_keys=True)


def decode_details(text: str) -> tuple[dict[str, Any], ...]:
    """Decode RFC 9396 authorization_details from a table column."""
    return tuple(json.loads(text))


def _from_row(row: RowMapping) -> Grant:
    return Grant(
        id=row["id"],
        user_id=row["user_id"],
        agent_class=row["agent_class"],
        scopes=decode_strings(row["scopes"]),
        audiences=decode_strings(row["audiences"]),
        authorization_details=decode_details(row["authorization_details"]),
        max_depth=row["max_depth"],
        expires_at=row["expires_at"],
        receipt=row["receipt"],
        receipt_hash=row["receipt_hash"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )


class GrantStore:
    """Reads and writes the grants table."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def insert_in(self, conn: Connection, grant: Grant) -> None:
        """Insert a grant inside a unit of work."""
        conn.execute(
            grants.insert().values(
                id=grant.id,
                user_id=grant.user_id,
                agent_class=grant.agent_class,
                scopes=encode_strings(grant.scopes),
                audiences=encode_strings(grant.audiences),
                authorization_details=encode_details(grant.authorization_details),
                max_depth=grant.max_depth,
                expires_at=grant.expires_at,
                receipt=grant.receipt,
                receipt_hash=grant.receipt_hash,
                created_at=grant.created_at,
                revoked_at=grant.revoked_at,
            )
        )

    def get_in(self, conn: Connection, grant_id: str) -> Grant | None:
        """Load a grant by id on an open connection, or return None."""
        row = (
            conn.execute(sa.select(grants).where(grants.c.id == grant_id))
            .mappings()
            .first()
        )
        return None if row is None else _from_row(row)

    def get(self, grant_id: str) -> Grant | None:
        """Load a grant by id, or return None."""
        with self._engine.connect() as conn:
            return self.get_in(conn, grant_id)

    def list_for_user(self, user_id: str) -> list[Grant]:
        """Load the grants a user approved, newest first."""
        query = (
            sa.select(grants)
            .where(grants.c.user_id == user_id)
            .order_by(grants.c.created_at.desc())
        )
        with self._engine.connect() as conn:
            return [_from_row(row) for row in conn.execute(query).mappings()]

    def list_all(self) -> list[Grant]:
        """Load every grant, newest first."""
        query = sa.select(grants).order_by(grants.c.created_at.desc())
        with self._engine.connect() as conn:
            return [_from_row(row) for row in conn.execute(query).mappings()]

    def active_ids_for_user_in(
        self, conn: Connection, user_id: str, *, now: float
    ) -> list[str]:
        """Return the ids of the user's grants neither revoked nor expired at ``now``.

        Oldest first, read on the caller's connection.
        """
        query = (
            sa.select(grants.c.id)
            .where(
                grants.c.user_id == user_id,
                grants.c.revoked_at.is_(None),
                grants.c.expires_at > now,
            )
            .order_by(grants.c.created_at, grants.c.id)
        )
        return list(conn.execute(query).scalars())

    def revoke_in(self, conn: Connection, grant_id: str, *, now: float) -> bool:
        """Mark a grant revoked inside a unit of work.

        The caller also puts the grant id into the revocation set in the same unit.

        Returns:
            Whether the grant existed and was not yet revoked.
        """
        result = conn.execute(
            grants.update()
            .where(grants.c.id == grant_id, grants.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        return result.rowcount == 1
