"""The signing_keys table: the server's signing keys, private halves encrypted.

Times are Unix seconds as floats.  ``private_key`` is ``nonce || AES-256-GCM
ciphertext`` of the PKCS #8 DER private key, with the ``kid`` as associated data,
under the key-encryption key.  ``retired_at`` is set when a newer key becomes
active; the key stays in the JWKS until ``drop_after``.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, LargeBinary, String, Table, Text

from agentiam.storage.metadata import metadata

signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("alg", String(16), nullable=False),
    Column("public_jwk", Text, nullable=False),
    Column("private_key", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("retired_at", Float, nullable=True),
    Column("drop_after", Float, nullable=True),
    Index("ix_signing_keys_created_at", "created_at"),
)
