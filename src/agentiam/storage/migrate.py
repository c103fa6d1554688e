"""Run the Alembic migrations programmatically; every start calls ``upgrade``."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect
from sqlalchemy.engine import Engine

from agentiam.storage.registry import load_all_tables

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

log = logging.getLogger("agentiam.storage.migrate")


def alembic_config() -> Config:
    """Return an Alembic config pointing at the packaged migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Upgrade the database behind ``engine`` to ``revision`` in one transaction."""
    config = alembic_config()
    config.attributes["load_metadata"] = False

    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def create_unmigrated_tables(engine: Engine) -> list[str]:
    """Create the declared tables that no migration has created yet; return names.

    TODO: remove once the initial revision is generated from every package's
    tables; until then this keeps the server usable while packages add tables.
    """
    metadata = load_all_tables()
    existing = set(inspect(engine).get_table_names())
    missing = [table for table in metadata.sorted_tables if table.name not in existing]
    if not missing:
        return []

    names = [table.name for table in missing]
    log.warning(
        "creating tables not covered by a migration",
        extra={"tables": ",".join(names)},
    )
    metadata.create_all(engine, tables=missing)
    return names
