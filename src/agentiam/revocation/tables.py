"""The revocations table: one row per revoked id, read by the feed in seq order.

Times are Unix seconds as floats. ``expires_at`` is the latest ``exp`` that a token
killed by the entry can have, after which the row can be purged.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, String, Table, UniqueConstraint

from agentiam.storage.metadata import metadata

revocations = Table(
    "revocations",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    # One of grant, task, instance, session, token.
    Column("kind", String(16), nullable=False),
    Column("id", String(256), nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("kind", "id", name="uq_revocations_kind_id"),
    sqlite_autoincrement=True,
)

Index("ix_revocations_expires_at", revocations.c.expires_at)
