"""Audit pseudonyms: keyed HMAC-SHA-256 of identifiers that must not appear raw.

Some identifiers work as a bearer secret or as a handle that finds a secret, a
session or a pending request.  An event never records them raw, nor as a plain
hash (a plain SHA-256 is the lookup key of the stored row).  It records
``pseudonym(kind, value)``: ``h1:`` and the unpadded base64url HMAC-SHA-256 of
the value under the audit HMAC key.  The same value of the same kind always
maps to the same pseudonym, so events can still be joined, but without the key
a reader of the log or of an export cannot confirm a guess or look anything up.

The kinds, and the form of the value each one takes:

| kind | value |
|---|---|
| ``auth_req_id`` | the stored hex SHA-256 of the CIBA ``auth_req_id`` |
| ``join_token`` | the stored hex SHA-256 of a join token |
| ``client_secret`` | the stored hash of a resource-server client's secret |
| ``sid`` | a session id, which revokes or finds a human's session |
| ``dpop_jti`` | the ``jti`` of a DPoP proof, the key of the replay cache |

Tokens, secrets, passwords and private keys are never recorded in any form;
``AuditEvent`` rejects token-shaped strings and secret-named keys.  The ``jti``
of an access token, SVID or session token is recorded raw, because the
revocation feed publishes it and it grants nothing by itself.

The key is 32 random bytes generated on first start and stored in
``audit_hmac_keys`` encrypted under the KEK with AES-256-GCM, like the signing
keys.  It is never logged and never leaves the server.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from typing import Final

from sqlalchemy import insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from agentiam.audit.errors import AuditError
from agentiam.audit.tables import audit_hmac_keys
from agentiam.keys.kek import decrypt_private_key, encrypt_private_key

log = logging.getLogger("agentiam.audit.pseudonyms")

# The version prefix of every pseudonym.  A change to the key, the HMAC input or
# the encoding gets a new prefix, so old and new pseudonyms never collide.
PSEUDONYM_VERSION: Final = "h1"

PSEUDONYM_KINDS: Final = frozenset(
    {"auth_req_id", "join_token", "client_secret", "sid", "dpop_jti"}
)

HMAC_KEY_SIZE: Final = 32

# The one row of ``audit_hmac_keys``.  A fixed id makes two servers starting at
# once on an empty database agree on one key: the second insert fails and reads
# the first one back.
HMAC_KEY_ID: Final = "audit-hmac-1"

# Associated data of the AES-GCM encryption, so a signing key's blob (whose
# associated data is its kid) can never be swapped in as the HMAC key.
_ASSOCIATED_DATA_PREFIX: Final = "audit-hmac-key/"

# The HMAC input: this label, the kind, a zero byte and the value in UTF-8.  It
# must never change, because stored pseudonyms would stop matching new ones.
_HMAC_LABEL: Final = b"agentiam audit pseudonym v1\x00"


class AuditPseudonyms:
    """The audit HMAC key and the function that turns identifiers into pseudonyms."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) != HMAC_KEY_SIZE:
            raise AuditError(
                f"The audit HMAC key is {len(key)} bytes; expected {HMAC_KEY_SIZE}."
            )
        self._key = key

    def __repr__(self) -> str:
        return "AuditPseudonyms(<key hidden>)"

    def pseudonym(self, kind: str, value: str) -> str:
        """Return the ``h1:`` pseudonym of ``value`` as an identifier of ``kind``.

        Raises:
            AuditError: ``kind`` is not one of ``PSEUDONYM_KINDS`` or ``value`` is
                empty.
        """
        if kind not in PSEUDONYM_KINDS:
            raise AuditError(
                f"Unknown pseudonym kind {kind!r}; "
                f"expected one of {sorted(PSEUDONYM_KINDS)}."
            )
        if not value:
            raise AuditError(f"The {kind} to pseudonymize is empty.")

        message = _HMAC_LABEL + kind.encode("ascii") + b"\x00" + value.encode("utf-8")
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        encoded = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
        return f"{PSEUDONYM_VERSION}:{encoded}"

    @classmethod
    def open(
        cls, engine: Engine, kek: bytes, *, clock: Callable[[], float] = time.time
    ) -> AuditPseudonyms:
        """Load the audit HMAC key, generating and storing it on first start.

        Raises:
            KEKError: the KEK does not decrypt the stored key.
        """
        return cls(load_or_create_hmac_key(engine, kek, now=clock()))


def load_or_create_hmac_key(engine: Engine, kek: bytes, *, now: float) -> bytes:
    """Return the decrypted audit HMAC key, creating it when the table is empty.

    Raises:
        KEKError: the KEK does not decrypt the stored key.
    """
    associated_data = _ASSOCIATED_DATA_PREFIX + HMAC_KEY_ID
    blob = _read_blob(engine)
    if blob is None:
        key = secrets.token_bytes(HMAC_KEY_SIZE)
        try:
            with engine.begin() as conn:
                conn.execute(
                    insert(audit_hmac_keys).values(
                        id=HMAC_KEY_ID,
                        key=encrypt_private_key(kek, associated_data, key),
                        created_at=now,
                    )
                )
        except IntegrityError:
            # Another process created the key first; use that one.
            blob = _read_blob(engine)
        else:
            log.info("Generated the audit HMAC key", extra={"key_id": HMAC_KEY_ID})
            return key

    if blob is None:
        raise AuditError("The audit HMAC key could not be created or read.")
    return decrypt_private_key(kek, associated_data, blob)


def _read_blob(engine: Engine) -> bytes | None:
    with engine.connect() as conn:
        row = conn.execute(
            select(audit_hmac_keys.c.key).where(audit_hmac_keys.c.id == HMAC_KEY_ID)
        ).first()
    return None if row is None else bytes(row.key)
