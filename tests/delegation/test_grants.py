"""Tests of the grant store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy

from agentiam.delegation.grant_tables import grants
from agentiam.delegation.grants import Grant, GrantStore
from agentiam.identity import tables as identity_tables
from agentiam.storage.metadata import metadata

GRANT = Grant(
    id="grt_1",
    user_id="usr_1",
    agent_class="support-orchestrator",
    scopes=("refunds", "tickets"),
    audiences=("https://support.example/api",),
    authorization_details=({"type": "refund", "max_amount": "100"},),
    max_depth=2,
    expires_at=1_800_001_800.0,
    receipt="a.b.c",
    receipt_hash="h" * 43,
    created_at=1_800_000_000.0,
)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sqlalchemy.Engine]:
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'grants.db'}")
    metadata.create_all(
        engine,
        tables=[identity_tables.users, identity_tables.agent_classes, grants],
    )
    yield engine
    engine.dispose()


def test_grant_round_trip(engine: sqlalchemy.Engine) -> None:
    store = GrantStore(engine)
    with engine.begin() as conn:
        store.insert_in(conn, GRANT)

    assert store.get("grt_1") == GRANT
    assert store.get("grt_2") is None
    assert store.list_for_user("usr_1") == [GRANT]


def test_grant_revoke_once(engine: sqlalchemy.Engine) -> None:
    store = GrantStore(engine)
    with engine.begin() as conn:
        store.insert_in(conn, GRANT)
        first = store.revoke_in(conn, "grt_1", now=1_800_000_100.0)
        second = store.revoke_in(conn, "grt_1", now=1_800_000_200.0)

    assert first is True
    assert second is False
    revoked = store.get("grt_1")
    assert revoked is not None
    assert revoked.revoked_at == 1_800_000_100.0
    assert not revoked.is_active(1_800_000_150.0)


def test_grant_is_active_until_expiry() -> None:
    assert GRANT.is_active(GRANT.expires_at - 1)
    assert not GRANT.is_active(GRANT.expires_at)
