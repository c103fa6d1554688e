"""Initial schema.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

NOTE: this revision creates only the keys package's table so far.  Regenerate it
from every package's tables with ``make -C src/agentiam/storage revision`` (see the
Makefile there) once all ``tables.py`` modules exist.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("alg", sa.String(length=16), nullable=False),
        sa.Column("public_jwk", sa.Text(), nullable=False),
        sa.Column("private_key", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("retired_at", sa.Float(), nullable=True),
        sa.Column("drop_after", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("kid", name=op.f("pk_signing_keys")),
    )
    op.create_index(
        "ix_signing_keys_created_at", "signing_keys", ["created_at"], unique=False
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_signing_keys_created_at", table_name="signing_keys")
    op.drop_table("signing_keys")
