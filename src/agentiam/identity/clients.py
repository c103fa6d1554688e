"""Resource-server clients, which authenticate with ``client_secret_basic``."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, select

from agentiam.identity.classes import validate_audience
from agentiam.identity.errors import (
    InvalidAgentClassError,
    InvalidClientRegistrationError,
)
from agentiam.identity.passwords import hash_client_secret, verify_client_secret
from agentiam.identity.tables import clients

_CLIENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True, slots=True)
class Client:
    """A registered resource server and the audiences it serves."""

    client_id: str
    audiences: frozenset[str]

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON view of the client."""
        return {"client_id": self.client_id, "audiences": sorted(self.audiences)}


@dataclass(frozen=True, slots=True)
class IssuedClient:
    """A client as created: the secret is shown once and only its hash is stored."""

    client: Client
    client_secret: str


class ClientStore:
    """Reads and writes resource-server clients.

    Reads use the engine; writes are ``*_in`` methods that run inside a unit of work.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add_in(
        self, conn: Connection, client_id: str, audiences: Iterable[str], *, now: float
    ) -> IssuedClient:
        """Register a client with a fresh random secret.

        Raises:
            InvalidClientRegistrationError: the client id or an audience is invalid,
                or the client id is taken.
        """
        if not _CLIENT_ID.fullmatch(client_id):
            raise InvalidClientRegistrationError(
                f"Invalid client id '{client_id}': expected 1 to 128 characters of "
                "A-Z, a-z, 0-9, '.', '_' and '-', starting with a letter or digit."
            )
        audience_set = frozenset(audiences)
        if not audience_set:
            raise InvalidClientRegistrationError(
                f"Client '{client_id}' needs at least one audience."
            )
        for audience in sorted(audience_set):
            try:
                validate_audience(audience)
            except InvalidAgentClassError as err:
                raise InvalidClientRegistrationError(err.hint) from err

        taken = conn.execute(
            select(clients.c.client_id).where(clients.c.client_id == client_id)
        )
        if taken.first() is not None:
            raise InvalidClientRegistrationError(
                f"Client '{client_id}' already exists."
            )

        secret = secrets.token_urlsafe(32)
        conn.execute(
            clients.insert().values(
                client_id=client_id,
                secret_hash=hash_client_secret(secret),
                audiences=json.dumps(sorted(audience_set)),
                disabled=False,
                created_at=now,
            )
        )
        return IssuedClient(Client(client_id, audience_set), secret)

    def authenticate(self, client_id: str, client_secret: str) -> Client | None:
        """Return the client when the secret matches, else None.

        An unknown client id still costs one hash comparison, so timing does not
        reveal which client ids exist.
        """
        with self._engine.connect() as conn:
            row = conn.execute(
                select(clients).where(clients.c.client_id == client_id)
            ).first()

        stored = hash_client_secret(secrets.token_urlsafe(32))
        if row is not None:
            stored = row.secret_hash
        matches = verify_client_secret(client_secret, stored)
        if row is None or not matches or row.disabled:
            return None
        return Client(row.client_id, frozenset(json.loads(row.audiences)))

    def get(self, client_id: str) -> Client | None:
        """Return the client with this id, or None."""
        with self._engine.connect() as conn:
            row = conn.execute(
                select(clients).where(clients.c.client_id == client_id)
            ).first()
        if row is None:
            return None
        return Client(row.client_id, frozenset(json.loads(row.audiences)))
