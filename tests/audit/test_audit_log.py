"""AuditLog: appends, the chain, rollback, durability, fail-closed, proofs, heads."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import Connection

from agentiam.audit.chain import GENESIS_CHAIN_HASH, next_chain_hash
from agentiam.audit.errors import AuditEventError, ProofError, TreeHeadError
from agentiam.audit.events import AuditEvent
from agentiam.audit.log import AuditLog
from agentiam.audit.merkle import leaf_hash, verify_consistency, verify_inclusion
from agentiam.audit.tables import audit_events, audit_tree_nodes
from agentiam.audit.tree import nodes_for_leaves
from agentiam.audit.tree_head import verify_tree_head
from agentiam.audit.verify import verify_log
from agentiam.errors import TemporarilyUnavailableError
from agentiam.storage.engine import create_engine


def _event(number: int = 0, **changes: object) -> AuditEvent:
    fields: dict[str, object] = {
        "type": "decision",
        "decision": "allow",
        "outcome": "granted",
        "actors": ["spiffe://agentiam.local/agent/worker/i-1"],
        "task_path": ["t-root"],
        "details": {"number": number},
    }
    fields.update(changes)
    return AuditEvent(**fields)  # type: ignore[arg-type]


def _record_many(log: AuditLog, count: int) -> list[int]:
    async def run() -> list[int]:
        return list(
            await asyncio.gather(*(log.record(_event(i)) for i in range(count)))
        )

    return asyncio.run(run())


def test_record_assigns_contiguous_seqs(audit_log: AuditLog) -> None:
    seqs = _record_many(audit_log, 200)
    assert sorted(seqs) == list(range(200))
    assert audit_log.stored_size() == 200
    assert audit_log.committed_size == 200


def test_record_builds_chain(audit_log: AuditLog, clock) -> None:
    _record_many(audit_log, 3)
    chain = GENESIS_CHAIN_HASH
    for seq in range(3):
        stored = audit_log.get(seq)
        assert stored is not None
        assert stored.leaf_hash == leaf_hash(stored.canonical)
        assert stored.canonical == stored.event.canonical()
        chain = next_chain_hash(chain, stored.leaf_hash)
        assert stored.chain_hash == chain
        assert stored.event.time == clock.now


def test_record_commits_before_returning(audit_log: AuditLog, database, tmp_path):
    seq = asyncio.run(audit_log.record(_event(7)))
    # A separate engine reads only what is committed to the file.
    other = create_engine(f"sqlite:///{tmp_path / 'agentiam.db'}")
    with other.connect() as conn:
        row = conn.execute(
            select(audit_events.c.seq).where(audit_events.c.seq == seq)
        ).first()
    other.dispose()
    assert row is not None


def test_record_in_rolls_back_with_failed_unit(audit_log: AuditLog, database) -> None:
    _, writer = database
    _record_many(audit_log, 2)

    def failing_unit(conn: Connection) -> None:
        audit_log.record_in(conn, _event(100))
        audit_log.record_in(conn, _event(101))
        raise RuntimeError("unit failed after appending")

    with pytest.raises(RuntimeError, match="unit failed"):
        writer.run_sync(failing_unit)

    assert audit_log.stored_size() == 2
    seq = writer.run_sync(lambda conn: audit_log.record_in(conn, _event(3)))
    assert seq == 2
    report = verify_log(audit_log._engine, lambda kid: None)
    assert report.ok, report.problems


def test_record_in_shares_caller_unit(audit_log: AuditLog, database) -> None:
    _, writer = database

    def unit(conn: Connection) -> list[int]:
        return [audit_log.record_in(conn, _event(i)) for i in range(3)]

    assert writer.run_sync(unit) == [0, 1, 2]


def test_record_fails_closed_when_table_missing(audit_log: AuditLog, database):
    engine, _ = database
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE audit_events"))
    with pytest.raises(TemporarilyUnavailableError) as caught:
        asyncio.run(audit_log.record(_event()))
    assert caught.value.error == "temporarily_unavailable"
    assert caught.value.status == 503
    assert "audit append failed" in (caught.value.reason or "")


def test_record_fails_closed_when_writer_closed(audit_log: AuditLog, database):
    _, writer = database
    writer.close()
    with pytest.raises(TemporarilyUnavailableError, match="temporarily unable"):
        asyncio.run(audit_log.record(_event()))


def test_log_restores_head_at_start(audit_log: AuditLog, database, clock, keyring):
    engine, writer = database
    _record_many(audit_log, 5)
    reopened = AuditLog(engine=engine, writer=writer, clock=clock, keyring=keyring)
    assert reopened.committed_size == 5
    assert asyncio.run(reopened.record(_event(5))) == 5


def test_proofs_verify_against_root(audit_log: AuditLog) -> None:
    _record_many(audit_log, 37)
    root = audit_log.root(37)
    for seq in (0, 17, 36):
        stored = audit_log.get(seq)
        assert stored is not None
        proof = audit_log.inclusion_proof(seq, 37)
        assert verify_inclusion(seq, 37, stored.leaf_hash, proof, root)
    proof = audit_log.consistency_proof(20, 37)
    assert verify_consistency(20, 37, audit_log.root(20), root, proof)


def test_proofs_reject_size_beyond_log(audit_log: AuditLog) -> None:
    _record_many(audit_log, 4)
    with pytest.raises(ProofError, match="Tree size 5 is larger than the log"):
        audit_log.inclusion_proof(0, 5)
    with pytest.raises(ProofError, match="from tree size 0"):
        audit_log.consistency_proof(0, 4)


def test_proofs_at_large_size_read_missing_nodes(audit_log: AuditLog, database) -> None:
    _, writer = database
    count = 5000

    def unit(conn: Connection) -> None:
        for i in range(count):
            audit_log.record_in(conn, _event(i))

    # record_in cannot know when the caller commits, so its nodes stay out of
    # memory until a proof reads them from the table.
    writer.run_sync(unit)
    assert audit_log._tree.nodes() == {}
    root = audit_log.root(count)
    proof = audit_log.inclusion_proof(4321, count)
    stored = audit_log.get(4321)
    assert stored is not None
    assert verify_inclusion(4321, count, stored.leaf_hash, proof, root)
    assert 0 < len(audit_log._tree.nodes()) <= 2 * 13


def _table_nodes(log: AuditLog) -> dict[tuple[int, int], bytes]:
    with log._engine.connect() as conn:
        rows = conn.execute(select(audit_tree_nodes)).all()
    return {(row.level, row.idx): bytes(row.hash) for row in rows}


def test_memory_nodes_equal_table(audit_log: AuditLog, database) -> None:
    engine, writer = database
    _record_many(audit_log, 700)
    assert audit_log._tree.nodes() == _table_nodes(audit_log)
    assert len(audit_log._tree.nodes()) == 10 + 5 + 2 + 1

    reopened = AuditLog(engine=engine, writer=writer, tree_head_every=0)
    assert reopened._tree.nodes() == _table_nodes(audit_log)


def test_proof_after_rolled_back_batch(audit_log: AuditLog, database) -> None:
    _, writer = database
    _record_many(audit_log, 60)

    def failing(conn: Connection) -> None:
        for i in range(10):
            audit_log.record_in(conn, _event(1000 + i))
        raise RuntimeError("test: roll the batch back")

    with pytest.raises(RuntimeError, match="roll the batch back"):
        writer.run_sync(failing)
    original = audit_log._append

    def append_then_fail(conn: Connection, entries):  # type: ignore[no-untyped-def]
        original(conn, entries)
        raise TemporarilyUnavailableError(reason="test: batch rolled back")

    # The rolled-back batch completes block 0 (seqs 60 to 63), so its node
    # would be wrong in memory once other events take those seqs.
    audit_log._append = append_then_fail  # type: ignore[method-assign]
    with pytest.raises(TemporarilyUnavailableError):
        _record_many(audit_log, 8)
    audit_log._append = original  # type: ignore[method-assign]
    assert audit_log._tree.nodes() == {}

    _record_many(audit_log, 100)
    assert audit_log._tree.nodes() == _table_nodes(audit_log)
    root = audit_log.root(160)
    for seq in (0, 61, 63, 64, 159):
        stored = audit_log.get(seq)
        assert stored is not None
        proof = audit_log.inclusion_proof(seq, 160)
        assert verify_inclusion(seq, 160, stored.leaf_hash, proof, root)
    assert verify_log(audit_log._engine, lambda kid: None).ok


def test_sign_tree_head(audit_log: AuditLog, keyring) -> None:
    _record_many(audit_log, 10)
    head = asyncio.run(audit_log.sign_tree_head())
    assert head.size == 10
    assert head.root == audit_log.root(10)
    assert head.kid == keyring.active().kid
    assert audit_log.latest_tree_head() == head
    checked = verify_tree_head(
        head.signature, keyring.lookup, issuer="http://127.0.0.1:8800"
    )
    assert checked.root == head.root


def test_tree_head_signed_every_n(database, clock, keyring) -> None:
    engine, writer = database
    log = AuditLog(
        engine=engine, writer=writer, clock=clock, keyring=keyring, tree_head_every=5
    )

    async def run() -> None:
        for i in range(12):
            await log.record(_event(i))

    asyncio.run(run())
    assert [head.size for head in log.tree_heads()] == [5, 10]


def test_tree_head_needs_keyring(database, clock) -> None:
    engine, writer = database
    log = AuditLog(engine=engine, writer=writer, clock=clock)
    with pytest.raises(TreeHeadError, match="cannot sign tree heads"):
        asyncio.run(log.sign_tree_head())


def test_close_signs_final_head(audit_log: AuditLog) -> None:
    async def run() -> None:
        await audit_log.start()
        await audit_log.record(_event())
        await audit_log.close()

    asyncio.run(run())
    latest = audit_log.latest_tree_head()
    assert latest is not None
    assert latest.size == 1


def test_record_concurrent_batches_share_head(audit_log: AuditLog, database) -> None:
    _, writer = database
    writer.run_sync(lambda conn: audit_log.record_in(conn, _event(0)))

    async def run() -> list[int]:
        return list(
            await asyncio.gather(*(audit_log.record(_event(i)) for i in range(1, 200)))
        )

    assert sorted(asyncio.run(run())) == list(range(1, 200))
    assert audit_log.stored_size() == 200
    report = verify_log(audit_log._engine, lambda kid: None)
    assert report.ok, report.problems


def test_record_batch_fails_only_failing_event(audit_log: AuditLog) -> None:
    original = audit_log._append

    def append(conn: Connection, entries):  # type: ignore[no-untyped-def]
        if any(entry.event.human == "h-bad" for entry in entries):
            raise TemporarilyUnavailableError(reason="test: bad event")
        return original(conn, entries)

    audit_log._append = append  # type: ignore[method-assign]

    async def run() -> list[object]:
        events = [_event(i) for i in range(5)] + [_event(5, human="h-bad")]
        return list(
            await asyncio.gather(
                *(audit_log.record(event) for event in events), return_exceptions=True
            )
        )

    results = asyncio.run(run())
    assert sorted(r for r in results if isinstance(r, int)) == [0, 1, 2, 3, 4]
    assert isinstance(results[5], TemporarilyUnavailableError)
    assert audit_log.stored_size() == 5
    assert verify_log(audit_log._engine, lambda kid: None).ok


def test_record_many_in_appends_in_order(audit_log: AuditLog, database) -> None:
    _, writer = database
    writer.run_sync(lambda conn: audit_log.record_in(conn, _event(0)))
    events = [_event(number) for number in range(1, 6)]

    seqs = writer.run_sync(lambda conn: audit_log.record_many_in(conn, events))

    assert seqs == [1, 2, 3, 4, 5]
    for seq in seqs:
        stored = audit_log.get(seq)
        assert stored is not None
        assert stored.event.details["number"] == seq
    report = verify_log(audit_log._engine, lambda kid: None)
    assert report.ok, report.problems


def test_record_many_in_empty(audit_log: AuditLog, database) -> None:
    _, writer = database
    assert writer.run_sync(lambda conn: audit_log.record_many_in(conn, [])) == []
    assert audit_log.stored_size() == 0


def test_record_many_in_rolls_back_with_unit(audit_log: AuditLog, database) -> None:
    _, writer = database

    def work(conn: Connection) -> None:
        audit_log.record_many_in(conn, [_event(1), _event(2)])
        raise ValueError("unit failed")

    with pytest.raises(ValueError, match="unit failed"):
        writer.run_sync(work)
    assert audit_log.stored_size() == 0


def test_record_many_in_rejects_unencodable(audit_log: AuditLog, database) -> None:
    _, writer = database
    events = [_event(1), _event(2, details={"big": 2**53 + 1})]

    with pytest.raises(AuditEventError, match="cannot be encoded"):
        writer.run_sync(lambda conn: audit_log.record_many_in(conn, events))
    assert audit_log.stored_size() == 0


def test_uneven_batches_store_reference_nodes(audit_log: AuditLog) -> None:
    # Batches of 37 and 50 events end inside a block of 64 leaves, so the next
    # batch builds that block from leaves appended before it.
    first = 0
    for size in (37, 50, 63, 70):
        _record_range(audit_log, first, first + size)
        first += size

    leaves = [audit_log.get(seq).leaf_hash for seq in range(first)]  # type: ignore[union-attr]
    expected = {
        (row["level"], row["idx"]): row["hash"] for row in nodes_for_leaves(leaves)
    }
    with audit_log._engine.connect() as conn:
        rows = conn.execute(select(audit_tree_nodes)).all()
    assert {(row.level, row.idx): bytes(row.hash) for row in rows} == expected


def _record_range(log: AuditLog, start: int, end: int) -> None:
    async def run() -> None:
        await asyncio.gather(*(log.record(_event(n)) for n in range(start, end)))

    asyncio.run(run())


def test_driver_error_in_append_is_unavailable(audit_log: AuditLog, database) -> None:
    engine, _ = database
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TRIGGER fail_actor BEFORE INSERT ON audit_event_actors "
            "BEGIN SELECT RAISE(ABORT, 'test: actor rejected'); END"
        )

    with pytest.raises(TemporarilyUnavailableError) as failed:
        asyncio.run(audit_log.record(_event(1)))
    assert "actor rejected" in str(failed.value.reason)
    assert audit_log.stored_size() == 0

    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER fail_actor")
    assert asyncio.run(audit_log.record(_event(2))) == 0
