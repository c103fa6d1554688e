"""Alembic environment: runs migrations on a connection given by ``migrate.py``.

``agentiam.storage.migrate`` passes an open connection in
``config.attributes["connection"]``.  Run from the ``alembic`` command line (for
``revision --autogenerate``), it connects to ``sqlalchemy.url`` of the config, and
every package's tables are imported so autogenerate sees the whole schema.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection

from agentiam.storage.engine import create_engine
from agentiam.storage.registry import load_all_tables

config = context.config


def _target_metadata() -> MetaData | None:
    # Upgrades do not need the metadata, so a start-up migration does not import
    # the other packages here; autogenerate does and sets load_metadata.
    if config.attributes.get("load_metadata", True):
        return load_all_tables()
    return None


def run_migrations() -> None:
    """Run the migrations on the given connection or on ``sqlalchemy.url``."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_on(connection)
        return

    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as conn:
        _run_on(conn)
        conn.commit()
    engine.dispose()


def _run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=_target_metadata(),
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
