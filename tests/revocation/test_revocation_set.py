"""The revocation set: which ids kill a token, commit and rollback, expiry, feed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy import Engine

from agentiam.revocation import RevocationSet, revoked_ids
from agentiam.revocation.errors import UnknownRevocationKindError
from agentiam.revocation.revocation_set import DROP_MARGIN
from agentiam.revocation.tables import revocations
from agentiam.storage.metadata import metadata
from agentiam.storage.writer import GroupCommitWriter
from agentiam.tokens import SVIDClaims

NOW = 1_800_000_000.0
WORKER = "spiffe://agentiam.local/agent/refund-worker/w-1"
ORCHESTRATOR = "spiffe://agentiam.local/agent/support-orchestrator/o-1"

TOKEN: dict[str, Any] = {
    "jti": "j-3",
    "client_id": WORKER,
    "act": {"sub": WORKER, "act": {"sub": ORCHESTRATOR}},
    "grant": {"id": "grt-1", "receipt_hash": "h"},
    "task": {"id": "tsk-2", "path": ["tsk-1", "tsk-2"]},
    "derived_from": ["j-1", "j-2"],
}


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'revocations.db'}")
    metadata.create_all(engine, tables=[revocations])
    yield engine
    engine.dispose()


@pytest.fixture
def writer(engine: Engine) -> Iterator[GroupCommitWriter]:
    writer = GroupCommitWriter(engine, batch_wait_ms=0)
    writer.start()
    yield writer
    writer.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _revoke(
    writer: GroupCommitWriter, revocation_set: RevocationSet, *entry: Any
) -> None:
    writer.run_sync(lambda conn: revocation_set.revoke_in(conn, *entry))


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        pytest.param("grant", "grt-1", id="grant"),
        pytest.param("task", "tsk-1", id="root-task"),
        pytest.param("task", "tsk-2", id="own-task"),
        pytest.param("instance", WORKER, id="client"),
        pytest.param("instance", ORCHESTRATOR, id="outer-actor"),
        pytest.param("token", "j-3", id="jti"),
        pytest.param("token", "j-1", id="derived-from"),
    ],
)
def test_kills_token_by_each_id(
    engine: Engine, writer: GroupCommitWriter, clock: Clock, kind: str, value: str
) -> None:
    revocation_set = RevocationSet(engine, clock=clock)

    _revoke(writer, revocation_set, kind, value, NOW + 300)

    assert revocation_set.kills(TOKEN) == value


def test_kills_nothing_for_other_ids(
    engine: Engine, writer: GroupCommitWriter, clock: Clock
) -> None:
    revocation_set = RevocationSet(engine, clock=clock)

    _revoke(writer, revocation_set, "task", "tsk-9", NOW + 300)
    _revoke(writer, revocation_set, "session", "j-3", NOW + 300)

    assert revocation_set.kills(TOKEN) is None


def test_kills_session_by_sid(
    engine: Engine, writer: GroupCommitWriter, clock: Clock
) -> None:
    revocation_set = RevocationSet(engine, clock=clock)

    _revoke(writer, revocation_set, "session", "sid-1", NOW + 300)

    assert revocation_set.kills({"sid": "sid-1", "jti": "x", "sub": "u-1"}) == "sid-1"


def test_kills_svid_of_revoked_parent(
    engine: Engine, writer: GroupCommitWriter, clock: Clock
) -> None:
    revocation_set = RevocationSet(engine, clock=clock)
    svid = {"sub": WORKER, "parent": ORCHESTRATOR, "jti": "s-1"}

    _revoke(writer, revocation_set, "instance", ORCHESTRATOR, NOW + 300)

    assert revocation_set.kills(svid) == ORCHESTRATOR


def test_kills_svid_of_revoked_ancestor(
    engine: Engine, writer: GroupCommitWriter, clock: Clock
) -> None:
    revocation_set = RevocationSet(engine, clock=clock)
    grandchild = "spiffe://agentiam.local/agent/refund-worker/w-2"
    svid = SVIDClaims(
        iss="http://127.0.0.1:8800",
        aud=("http://127.0.0.1:8800",),
        sub=grandchild,
        iat=NOW,
        exp=NOW + 300,
        jti="s-2",
        cnf_jkt="jkt",
        parent=WORKER,
        ancestors=(ORCHESTRATOR, WORKER),
    )

    _revoke(writer, revocation_set, "instance", ORCHESTRATOR, NOW + 300)

    assert revocation_set.kills(svid) == ORCHESTRATOR


def test_revoked_ids_lists_every_id() -> None:
    pairs = set(revoked_ids(TOKEN))

    assert ("grant", "grt-1") in pairs
    assert ("task", "tsk-1") in pairs
    assert ("instance", ORCHESTRATOR) in pairs
    assert ("token", "j-2") in pairs


def test_rolled_back_unit_stays_out_of_memory(
    engine: Engine, writer: GroupCommitWriter, clock: Clock
) -> None:
    revocation_set = RevocationSet(engine, clock=clock)

    def failing(conn: Any) -> None:
        revocation_set.revoke_in(conn, "token", "j-3", NOW + 300)
        raise RuntimeError("unit fails after revoking")

    with pytest.raises(RuntimeError):
        writer.run_sync(failing)

    assert revocation_set.kills(TOKEN) is None
    assert revocation_set.feed(0)[1] == []


def test_entry_dropped_after_expiry(
    engine: Engine, writer: GroupCommitWriter, clock: Clock
) -> None:
    revocation_set = RevocationSet(engine, clock=clock)
    _revoke(writer, revocation_set, "token", "j-3", NOW + 10)

    clock.now = NOW + 10 + DROP_MARGIN + 1

    assert revocation_set.kills(TOKEN) is None
    assert revocation_set.drop_expired(clock.now) == 1
    assert len(revocation_set) == 0


def test_revoke_twice_keeps_later_expiry(
    engine: Engine, writer: GroupCommitWriter, clock: Clock
) -> None:
    revocation_set = RevocationSet(engine, clock=clock)

    _revoke(writer, revocation_set, "token", "j-3", NOW + 500)
    _revoke(writer, revocation_set, "token", "j-3", NOW + 100)

    latest, entries = revocation_set.feed(0)
    assert latest == 1
    assert [entry.expires_at for entry in entries] == [NOW + 500]


def test_rejects_unknown_kind(
    engine: Engine, writer: GroupCommitWriter, clock: Clock
) -> None:
    revocation_set = RevocationSet(engine, clock=clock)

    with pytest.raises(UnknownRevocationKindError, match="'user'"):
        _revoke(writer, revocation_set, "user", "u-1", NOW + 300)


def test_other_node_converges_on_refresh(
    engine: Engine, writer: GroupCommitWriter, clock: Clock
) -> None:
    node_a = RevocationSet(engine, clock=clock)
    node_b = RevocationSet(None, clock=clock)
    with engine.connect() as conn:
        node_b.load(conn)

    _revoke(writer, node_a, "grant", "grt-1", NOW + 300)
    assert node_b.kills(TOKEN) is None

    with engine.connect() as conn:
        assert node_b.refresh(conn) == 1
    assert node_b.kills(TOKEN) == "grt-1"
    assert node_b.seq == 1


def test_load_reads_live_rows(
    engine: Engine, writer: GroupCommitWriter, clock: Clock
) -> None:
    _revoke(writer, RevocationSet(engine, clock=clock), "task", "tsk-1", NOW + 300)
    _revoke(writer, RevocationSet(engine, clock=clock), "task", "tsk-0", NOW - 600)

    fresh = RevocationSet(engine, clock=clock)

    assert fresh.load() == 1
    assert fresh.is_revoked("task", "tsk-1")


def test_feed_returns_entries_after_since(
    engine: Engine, writer: GroupCommitWriter, clock: Clock
) -> None:
    revocation_set = RevocationSet(engine, clock=clock)
    for value in ("a", "b", "c"):
        _revoke(writer, revocation_set, "token", value, NOW + 300)

    latest, entries = revocation_set.feed(1)

    assert latest == 3
    assert [entry.to_dict() for entry in entries] == [
        {"seq": 2, "kind": "token", "id": "b", "expires_at": NOW + 300},
        {"seq": 3, "kind": "token", "id": "c", "expires_at": NOW + 300},
    ]


def test_purge_deletes_expired_rows(
    engine: Engine, writer: GroupCommitWriter, clock: Clock
) -> None:
    revocation_set = RevocationSet(engine, clock=clock)
    _revoke(writer, revocation_set, "token", "old", NOW - 600)
    _revoke(writer, revocation_set, "token", "new", NOW + 600)

    deleted = writer.run_sync(lambda conn: revocation_set.purge_in(conn, NOW))

    assert deleted == 1
    assert [entry.id for entry in revocation_set.feed(0)[1]] == ["new"]
