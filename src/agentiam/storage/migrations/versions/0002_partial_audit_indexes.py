"""index audit_events.human and grant_id only where they are set

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 18:45:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("human", "grant_id")


def upgrade() -> None:
    """Apply this revision."""
    for column in _COLUMNS:
        name = f"ix_audit_events_{column}"
        where = sa.text(f"{column} IS NOT NULL")
        op.drop_index(name, table_name="audit_events")
        op.create_index(
            name,
            "audit_events",
            [column],
            unique=False,
            sqlite_where=where,
            postgresql_where=where,
        )


def downgrade() -> None:
    """Revert this revision."""
    for column in _COLUMNS:
        name = f"ix_audit_events_{column}"
        op.drop_index(name, table_name="audit_events")
        op.create_index(name, "audit_events", [column], unique=False)
