"""CIBA requests as value objects, and the store over the ciba_requests table."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, RowMapping

from agentiam.approvals.tables import ciba_requests
from agentiam.delegation.grants import (
    decode_details,
    decode_strings,
    encode_details,
    encode_strings,
)


def hash_auth_req_id(auth_req_id: str) -> str:
    """Return the hex SHA-256 of an auth_req_id, the only form of it that is stored."""
    return hashlib.sha256(auth_req_id.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class CIBARequest:
    """One CIBA authentication request and the state of its decision."""

    id: str
    auth_req_id_hash: str
    status: str
    agent_class: str
    instance_id: str
    instance_jkt: str
    user_id: str
    binding_message: str
    scopes: tuple[str, ...]
    audiences: tuple[str, ...]
    authorization_details: tuple[dict[str, Any], ...]
    max_depth: int
    grant_ttl: int
    created_at: float
    expires_at: float
    interval: int
    last_polled_at: float | None = None
    decided_at: float | None = None
    decided_by: str | None = None
    grant_id: str | None = None

    def is_expired(self, now: float) -> bool:
        """Return whether the auth_req_id is past its expiry at ``now``."""
        return now >= self.expires_at

    def to_public_dict(self) -> dict[str, Any]:
        """Return the view shown to the human by GET /v1/approvals, without secrets."""
        return {
            "id": self.id,
            "status": self.status,
            "agent_class": self.agent_class,
            "instance": self.instance_id,
            "binding_message": self.binding_message,
            "scope": " ".join(self.scopes),
            "audiences": list(self.audiences),
            "authorization_details": [dict(d) for d in self.authorization_details],
            "max_depth": self.max_depth,
            "grant_expires_in": self.grant_ttl,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
        }


def _from_row(row: RowMapping) -> CIBARequest:
    return CIBARequest(
        id=row["id"],
        auth_req_id_hash=row["auth_req_id_hash"],
        status=row["status"],
        agent_class=row["agent_class"],
        instance_id=row["instance_id"],
        instance_jkt=row["instance_jkt"],
        user_id=row["user_id"],
        binding_message=row["binding_message"],
        scopes=decode_strings(row["scopes"]),
        audiences=decode_strings(row["audiences"]),
        authorization_details=decode_details(row["authorization_details"]),
        max_depth=row["max_depth"],
        grant_ttl=row["grant_ttl"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        interval=row["interval"],
        last_polled_at=row["last_polled_at"],
        decided_at=row["decided_at"],
        decided_by=row["decided_by"],
        grant_id=row["grant_id"],
    )


class CIBARequestStore:
    """Reads and writes the ciba_requests table.

    Methods ending in ``_in`` run on the connection of a unit of work; the others
    open their own read connection.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def insert_in(self, conn: Connection, request: CIBARequest) -> None:
        """Insert a new request."""
        conn.execute(
            ciba_requests.insert().values(
                id=request.id,
                auth_req_id_hash=request.auth_req_id_hash,
                status=request.status,
                agent_class=request.agent_class,
                instance_id=request.instance_id,
                instance_jkt=request.instance_jkt,
                user_id=request.user_id,
                binding_message=request.binding_message,
                scopes=encode_strings(request.scopes),
                audiences=encode_strings(request.audiences),
                authorization_details=encode_details(request.authorization_details),
                max_depth=request.max_depth,
                grant_ttl=request.grant_ttl,
                created_at=request.created_at,
                expires_at=request.expires_at,
                interval=request.interval,
                last_polled_at=request.last_polled_at,
            )
        )

    def get_in(self, conn: Connection, request_id: str) -> CIBARequest | None:
        """Load a request by its public id, or return None."""
        query = sa.select(ciba_requests).where(ciba_requests.c.id == request_id)
        row = conn.execute(query).mappings().first()
        return None if row is None else _from_row(row)

    def get(self, request_id: str) -> CIBARequest | None:
        """Load a request by its public id, or return None."""
        with self._engine.connect() as conn:
            return self.get_in(conn, request_id)

    def find_by_auth_req_id_in(
        self, conn: Connection, auth_req_id: str
    ) -> CIBARequest | None:
        """Load a request by its auth_req_id (looked up by hash), or return None."""
        digest = hash_auth_req_id(auth_req_id)
        query = sa.select(ciba_requests).where(
            ciba_requests.c.auth_req_id_hash == digest
        )
        row = conn.execute(query).mappings().first()
        return None if row is None else _from_row(row)

    def list_pending(self, user_id: str, *, now: float) -> list[CIBARequest]:
        """Load a user's undecided, unexpired requests, oldest first."""
        query = (
            sa.select(ciba_requests)
            .where(
                ciba_requests.c.user_id == user_id,
                ciba_requests.c.status == "pending",
                ciba_requests.c.expires_at > now,
            )
            .order_by(ciba_requests.c.created_at, ciba_requests.c.id)
        )
        with self._engine.connect() as conn:
            return [_from_row(row) for row in conn.execute(query).mappings()]

    def transition_in(
        self,
        conn: Connection,
        request_id: str,
        *,
        from_status: str,
        to_status: str,
        **values: Any,
    ) -> bool:
        """Move a request from one status to another, with further column values.

        The status in the WHERE clause makes the change a compare-and-set, so two
        concurrent decisions or redemptions cannot both succeed.

        Returns:
            Whether the request was in ``from_status`` and was changed.
        """
        result = conn.execute(
            ciba_requests.update()
            .where(
                ciba_requests.c.id == request_id,
                ciba_requests.c.status == from_status,
            )
            .values(status=to_status, **values)
        )
        return result.rowcount == 1

    def record_poll_in(
        self, conn: Connection, request_id: str, *, now: float, interval: int
    ) -> None:
        """Store the time of a poll and the interval the client must keep."""
        conn.execute(
            ciba_requests.update()
            .where(ciba_requests.c.id == request_id)
            .values(last_polled_at=now, interval=interval)
        )
