"""The signing key ring: the active key and retired keys still in their overlap.

On first start the ring generates a key (``signing_alg``, ES256 by default) and
stores it with its private half encrypted under the KEK.  ``rotate(now)`` makes a
new key active and keeps the previous one verifiable, and published in the JWKS,
until ``now + key_rotation_overlap``.  A retired key past that time is dropped.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection, Engine

from agentiam.config import Settings
from agentiam.jose.keys import SigningKey, VerificationKey
from agentiam.keys.errors import KeyRingError
from agentiam.keys.kek import decrypt_private_key, encrypt_private_key, load_kek
from agentiam.keys.tables import signing_keys

log = logging.getLogger("agentiam.keys")

# A lookup of an unknown kid reloads the table at most this often, so a key
# rotated by another process is picked up without a reload per bad token.
RELOAD_INTERVAL = 1.0


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """One row of the ring as the CLI lists it (no private material)."""

    kid: str
    alg: str
    created_at: float
    retired_at: float | None
    drop_after: float | None
    active: bool


@dataclass(frozen=True, slots=True)
class _State:
    active: SigningKey
    public: Mapping[
        str, tuple[VerificationKey, float | None]
    ]  # kid -> (key, drop_after)
    infos: tuple[KeyInfo, ...]


class KeyRing:
    """The server's signing keys, loaded from the ``signing_keys`` table."""

    def __init__(
        self,
        engine: Engine,
        *,
        kek: bytes,
        alg: str = "ES256",
        overlap: float = 3630,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.alg = alg
        self.overlap = overlap
        self.clock = clock
        self._kek = kek
        self._lock = threading.Lock()
        self._loaded_at = float("-inf")
        self._state = self._load_or_create()

    @classmethod
    def open(
        cls,
        engine: Engine,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        environ: Mapping[str, str] | None = None,
    ) -> KeyRing:
        """Load the KEK and the keys for ``settings``; generate the first key.

        A KEK file is generated only while no signing key is stored, so a command
        run without the server's KEK fails instead of writing a second one.
        """
        with engine.connect() as conn:
            has_keys = conn.execute(select(signing_keys.c.kid).limit(1)).first()
        kek = load_kek(settings, environ, generate=has_keys is None)
        return cls(
            engine,
            kek=kek,
            alg=settings.signing_alg,
            overlap=settings.key_rotation_overlap,
            clock=clock,
        )

    def active(self) -> SigningKey:
        """Return the key new tokens are signed with."""
        return self._state.active

    def lookup(self, kid: str) -> VerificationKey | None:
        """Return the public key for ``kid`` if it is active or in its overlap."""
        found = self._find(kid)
        if found is None and self.clock() - self._loaded_at >= RELOAD_INTERVAL:
            self.refresh()
            found = self._find(kid)
        return found

    def jwks(self) -> dict[str, Any]:
        """Return the JWKS: the active key and retired keys still in their overlap."""
        now = self.clock()
        keys = [
            key.to_jwk()
            for key, drop_after in self._state.public.values()
            if drop_after is None or now < drop_after
        ]
        return {"keys": keys}

    def entries(self) -> tuple[KeyInfo, ...]:
        """Return every stored key, newest first, without private material."""
        return self._state.infos

    def rotate(self, now: float) -> SigningKey:
        """Make a new key active; retire the current one until ``now + overlap``."""
        key = SigningKey.generate(self.alg)

        with self.engine.begin() as conn:
            conn.execute(
                update(signing_keys)
                .where(signing_keys.c.retired_at.is_(None))
                .values(retired_at=now, drop_after=now + self.overlap)
            )
            conn.execute(delete(signing_keys).where(signing_keys.c.drop_after <= now))
            self._insert(conn, key, now)

        log.info("signing key rotated", extra={"kid": key.kid, "alg": key.alg})
        self.refresh()
        return key

    def refresh(self) -> None:
        """Reload the keys from the database (picks up rotations by other processes)."""
        with self._lock:
            with self.engine.connect() as conn:
                self._state = self._read(conn)
            self._loaded_at = self.clock()

    def _find(self, kid: str) -> VerificationKey | None:
        entry = self._state.public.get(kid)
        if entry is None:
            return None

        key, drop_after = entry
        if drop_after is not None and self.clock() >= drop_after:
            return None
        return key

    def _load_or_create(self) -> _State:
        with self.engine.begin() as conn:
            exists = conn.execute(select(signing_keys.c.kid).limit(1)).first()
            if exists is None:
                key = SigningKey.generate(self.alg)
                self._insert(conn, key, self.clock())
                log.info(
                    "signing key generated", extra={"kid": key.kid, "alg": key.alg}
                )
            state = self._read(conn)

        self._loaded_at = self.clock()
        return state

    def _insert(self, conn: Connection, key: SigningKey, now: float) -> None:
        der = key.private_key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        conn.execute(
            insert(signing_keys).values(
                kid=key.kid,
                alg=key.alg,
                public_jwk=json.dumps(key.public_jwk(), sort_keys=True),
                private_key=encrypt_private_key(self._kek, key.kid, der),
                created_at=now,
                retired_at=None,
                drop_after=None,
            )
        )

    def _read(self, conn: Connection) -> _State:
        rows = conn.execute(
            select(signing_keys).order_by(
                signing_keys.c.created_at.desc(), signing_keys.c.kid
            )
        ).all()
        current = [row for row in rows if row.retired_at is None]
        if not current:
            raise KeyRingError("no active signing key in the signing_keys table")

        active = self._decrypt(current[0])
        public: dict[str, tuple[VerificationKey, float | None]] = {}
        infos: list[KeyInfo] = []
        for row in rows:
            jwk = json.loads(row.public_jwk)
            public[row.kid] = (
                VerificationKey.from_jwk(jwk, kid=row.kid),
                row.drop_after,
            )
            infos.append(
                KeyInfo(
                    kid=row.kid,
                    alg=row.alg,
                    created_at=row.created_at,
                    retired_at=row.retired_at,
                    drop_after=row.drop_after,
                    active=row.kid == active.kid,
                )
            )
        return _State(active=active, public=public, infos=tuple(infos))

    def _decrypt(self, row: Any) -> SigningKey:
        der = decrypt_private_key(self._kek, row.kid, row.private_key)
        private_key = serialization.load_der_private_key(der, password=None)
        return SigningKey(row.kid, row.alg, private_key)  # type: ignore[arg-type]
