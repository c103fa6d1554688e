"""Readers that poll by seq miss no row: commit order and later expiries.

A reader (another node's ``refresh``, a resource server on the feed) reads only
rows above the highest seq it has read, so rows must commit in seq order and a
change to a row must come with a new seq.
"""

from __future__ import annotations

import pytest
import sqlalchemy
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError
from tests.storage.conftest import postgres_engine, sqlite_engine

from agentiam.revocation import RevocationSet
from agentiam.revocation.revocation_set import DROP_MARGIN
from agentiam.revocation.tables import revocations
from agentiam.storage.metadata import metadata

__all__ = ["postgres_engine", "sqlite_engine"]

NOW = 1_800_000_000.0


def clock() -> float:
    return NOW


@pytest.fixture
def postgres_revocations(postgres_engine: Engine) -> Engine:
    metadata.create_all(postgres_engine, tables=[revocations])
    return postgres_engine


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest) -> Engine:
    engine: Engine = request.getfixturevalue(f"{request.param}_engine")
    metadata.create_all(engine, tables=[revocations])
    return engine


def test_later_expiry_reaches_other_node(engine: Engine) -> None:
    node_a = RevocationSet(engine, clock=clock)
    node_b = RevocationSet(None, clock=clock)
    with engine.begin() as conn:
        node_a.revoke_in(conn, "instance", "i-1", NOW + 100)
    with engine.connect() as conn:
        assert node_b.refresh(conn) == 1

    with engine.begin() as conn:
        node_a.revoke_in(conn, "instance", "i-1", NOW + 1000)
    with engine.connect() as conn:
        assert node_b.refresh(conn) == 1

    past_first_expiry = NOW + 100 + DROP_MARGIN + 1
    later = RevocationSet(None, clock=lambda: past_first_expiry)
    with engine.connect() as conn:
        later.load(conn)
        rows = conn.execute(sqlalchemy.select(revocations.c.expires_at)).all()
    assert rows == [(NOW + 1000,)]
    assert later.is_revoked("instance", "i-1")
    assert node_b.seq == 2


def test_earlier_expiry_keeps_the_row(engine: Engine) -> None:
    node = RevocationSet(engine, clock=clock)
    with engine.begin() as conn:
        node.revoke_in(conn, "task", "tsk-1", NOW + 1000)
        node.revoke_in(conn, "task", "tsk-1", NOW + 10)

    with engine.connect() as conn:
        rows = conn.execute(
            sqlalchemy.select(revocations.c.seq, revocations.c.expires_at)
        ).all()
    assert rows == [(1, NOW + 1000)]


@pytest.mark.postgres
def test_postgres_writers_commit_in_seq_order(postgres_revocations: Engine) -> None:
    node = RevocationSet(postgres_revocations, clock=clock)

    with postgres_revocations.connect() as first:
        first_txn = first.begin()
        node.revoke_in(first, "task", "tsk-first", NOW + 300)
        # While the first transaction is open, a second writer cannot take a seq.
        with postgres_revocations.connect() as second:
            second.execute(text("SET lock_timeout = '200ms'"))
            second.commit()
            with (
                pytest.raises(OperationalError, match="lock timeout"),
                second.begin(),
            ):
                node.revoke_in(second, "task", "tsk-second", NOW + 300)
        first_txn.commit()

    with postgres_revocations.begin() as conn:
        node.revoke_in(conn, "task", "tsk-second", NOW + 300)
    with postgres_revocations.connect() as conn:
        rows = conn.execute(
            sqlalchemy.select(revocations.c.id).order_by(revocations.c.seq)
        ).all()
    assert [row[0] for row in rows] == ["tsk-first", "tsk-second"]
