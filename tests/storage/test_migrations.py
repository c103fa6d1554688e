"""The Alembic revisions build exactly the tables the packages declare."""

from __future__ import annotations

import pytest
import sqlalchemy
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from agentiam.storage.metadata import metadata
from agentiam.storage.migrate import upgrade
from agentiam.storage.registry import load_all_tables


@pytest.mark.parametrize("engine_name", ["sqlite_engine", "postgres_engine"])
def test_migrated_schema_matches_tables(
    engine_name: str, request: pytest.FixtureRequest
) -> None:
    engine: sqlalchemy.Engine = request.getfixturevalue(engine_name)
    load_all_tables()
    upgrade(engine)

    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)

    assert differences == []
