"""Engines for the storage tests: SQLite in tmp_path and a PostgreSQL schema."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy
from sqlalchemy import text

from agentiam.storage.engine import create_engine

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@contextlib.contextmanager
def postgres_schema(prefix: str) -> Iterator[str]:
    """Create a fresh schema in the test database and drop it afterwards.

    Yields the database URL whose ``search_path`` is the new schema.  A server
    that is down fails the test: the connection error propagates.
    """
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
        finally:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()


@pytest.fixture
def sqlite_engine(tmp_path) -> Iterator[sqlalchemy.Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'test.db'}")
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_engine() -> Iterator[sqlalchemy.Engine]:
    """An engine whose search_path is a fresh schema, dropped afterwards.

    A server that is down fails the test: the connection error propagates.
    """
    schema = f"agentiam_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))

    engine = create_engine(
        POSTGRES_URL, connect_args={"options": f"-csearch_path={schema}"}
    )
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request) -> sqlalchemy.Engine:
    return request.getfixturevalue(f"{request.param}_engine")
