"""Run the Alembic migrations programmatically; every start calls ``upgrade``."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect
from sqlalchemy.engine import Engine

from agentiam.storage.errors import StorageError
from agentiam.storage.registry import load_all_tables

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config() -> Config:
    """Return an Alembic config pointing at the packaged migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


# The table in which Alembic records the revision a database is at: its default
# name, which the migration environment keeps.  Only a migrated database has it.
VERSION_TABLE = "alembic_version"


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Upgrade the database behind ``engine`` to ``revision`` in one transaction."""
    config = alembic_config()
    config.attributes["load_metadata"] = False

    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def require_schema_current(engine: Engine) -> None:
    """Check that the migrations created every table the packages declare.

    Raises:
        StorageError: a declared table is missing, so a package added a table
            without a migration; regenerate or add a revision.
    """
    metadata = load_all_tables()
    existing = set(inspect(engine).get_table_names())
    declared = sorted(table.name for table in metadata.sorted_tables)
    missing = [name for name in declared if name not in existing]
    if missing:
        raise StorageError(
            f"Tables {', '.join(repr(name) for name in missing)} are declared but "
            "no migration creates them."
        )
