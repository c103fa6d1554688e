"""Fixtures of the identity unit tests: a SQLite database with the identity tables."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy

from agentiam.identity import tables


@pytest.fixture
def identity_engine(tmp_path: Path) -> Iterator[sqlalchemy.Engine]:
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'identity.db'}")
    tables.metadata.create_all(
        engine,
        tables=[
            tables.users,
            tables.agent_classes,
            tables.class_keys,
            tables.join_tokens,
            tables.clients,
        ],
    )
    yield engine
    engine.dispose()
