"""The grants table: a human's approval to an agent class, with its consent receipt.

Times are Unix seconds as floats. Scopes and audiences are JSON arrays, sorted, and
``authorization_details`` is the JSON array of RFC 9396 objects as approved.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, ForeignKey, Index, Integer, String, Table, Text

from agentiam.storage.metadata import metadata

grants = Table(
    "grants",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("user_id", String(64), ForeignKey("users.id"), nullable=False),
    Column("agent_class", String(64), ForeignKey("agent_classes.name"), nullable=False),
    Column("scopes", Text, nullable=False),
    Column("audiences", Text, nullable=False),
    Column("authorization_details", Text, nullable=False),
    Column("max_depth", Integer, nullable=False),
    Column("expires_at", Float, nullable=False),
    # The compact JWS of the consent receipt and its base64url SHA-256, which every
    # token derived from the grant carries as grant.receipt_hash.
    Column("receipt", Text, nullable=False),
    Column("receipt_hash", String(64), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
)

Index("ix_grants_user_id", grants.c.user_id)
