from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from types import SimpleNamespace

import pytest
from sqlalchemy import (
    Column,
    ForeignKeyConstraint,
    Integer,
    MetaData,
    Table,
    event,
    func,
    insert,
    select,
    text,
)

from agentiam.errors import TemporarilyUnavailableError
from agentiam.revocation import RevocationSet
from agentiam.storage import writer as writer_module
from agentiam.storage.errors import WriterClosedError
from agentiam.storage.migrate import upgrade
from agentiam.storage.writer import GroupCommitWriter

local = MetaData()
parents = Table("w_parents", local, Column("id", Integer, primary_key=True))
items = Table(
    "w_items",
    local,
    Column("id", Integer, primary_key=True),
    Column("parent_id", Integer, nullable=True),
    # Deferred, so a bad reference fails the COMMIT and not the INSERT.
    ForeignKeyConstraint(
        ["parent_id"], ["w_parents.id"], deferrable=True, initially="DEFERRED"
    ),
)


@pytest.fixture
def writer(engine):
    local.create_all(engine)
    group = GroupCommitWriter(engine, batch_max=64, batch_wait_ms=20)
    group.start()
    yield group
    group.close()


def count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(items)).scalar_one()


def add(item_id, parent_id=None):
    def work(conn):
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA defer_foreign_keys=ON")
        conn.execute(insert(items).values(id=item_id, parent_id=parent_id))
        return item_id

    return work


def test_submit_returns_result_after_commit(engine, writer):
    async def scenario():
        return await asyncio.gather(*(writer.submit(add(i)) for i in range(50)))

    assert asyncio.run(scenario()) == list(range(50))
    assert count(engine) == 50


def test_units_share_a_batch(engine, writer):
    seen = []

    def record(conn):
        seen.append(threading.get_ident())
        return conn.connection.dbapi_connection

    async def scenario():
        return await asyncio.gather(*(writer.submit(record) for _ in range(10)))

    connections = asyncio.run(scenario())
    assert len(set(map(id, connections))) == 1
    assert len(set(seen)) == 1


def test_failing_unit_fails_only_itself(engine, writer):
    def boom(conn):
        conn.execute(insert(items).values(id=999))
        raise ValueError("unit failed")

    async def scenario():
        return await asyncio.gather(
            writer.submit(add(1)),
            writer.submit(boom),
            writer.submit(add(2)),
            return_exceptions=True,
        )

    first, second, third = asyncio.run(scenario())
    assert first == 1
    assert isinstance(second, ValueError)
    assert third == 2
    with engine.connect() as conn:
        ids = sorted(conn.execute(select(items.c.id)).scalars())
    assert ids == [1, 2]


def test_lone_unit_failure_rolls_back_without_savepoint(engine, writer):
    events: list[str] = []
    event.listen(engine, "savepoint", lambda *args: events.append("savepoint"))
    event.listen(engine, "rollback", lambda *args: events.append("rollback"))

    def boom(conn):
        conn.execute(insert(items).values(id=999))
        raise ValueError("unit failed")

    with pytest.raises(ValueError, match="unit failed"):
        writer.run_sync(boom)
    assert events == ["rollback"]
    assert writer.run_sync(add(1)) == 1
    assert count(engine) == 1


def test_lone_unit_rollback_keeps_revocation_out(engine):
    upgrade(engine)
    revocations = RevocationSet(engine)
    group = GroupCommitWriter(engine)
    group.start()

    def revoke_then_fail(conn):
        revocations.revoke_in(conn, "token", "j-failed", time.time() + 60)
        raise ValueError("unit failed")

    try:
        with pytest.raises(ValueError, match="unit failed"):
            group.run_sync(revoke_then_fail)
        group.run_sync(
            lambda conn: revocations.revoke_in(
                conn, "token", "j-kept", time.time() + 60
            )
        )
    finally:
        group.close()
    assert not revocations.is_revoked("token", "j-failed")
    assert revocations.is_revoked("token", "j-kept")


def test_lone_batched_item_fails_only_itself(engine, writer):
    with pytest.raises(ValueError, match="negative id"):
        asyncio.run(writer.submit_batched(insert_each, -5))
    assert asyncio.run(writer.submit_batched(insert_each, 6)) == 6
    with engine.connect() as conn:
        ids = sorted(conn.execute(select(items.c.id)).scalars())
    assert ids == [6]


def test_lone_batched_item_wrong_result_count(engine, writer):
    def no_results(conn, ids):
        conn.execute(insert(items).values(id=7))
        return []

    with pytest.raises(RuntimeError, match="returned 0 results for 1 items"):
        asyncio.run(writer.submit_batched(no_results, 7))
    assert count(engine) == 0


def test_commit_failure_fails_whole_batch(engine, writer):
    async def scenario():
        return await asyncio.gather(
            writer.submit(add(1)),
            writer.submit(add(2, parent_id=12345)),
            writer.submit(add(3)),
            return_exceptions=True,
        )

    results = asyncio.run(scenario())
    assert all(isinstance(r, TemporarilyUnavailableError) for r in results), results
    assert count(engine) == 0


def test_writer_recovers_after_commit_failure(engine, writer):
    with pytest.raises(TemporarilyUnavailableError):
        writer.run_sync(add(1, parent_id=12345))
    assert writer.run_sync(add(2)) == 2
    assert count(engine) == 1


def test_run_sync(engine, writer):
    assert writer.run_sync(add(7)) == 7
    assert count(engine) == 1


def test_batch_max_splits_batches(engine):
    local.create_all(engine)
    group = GroupCommitWriter(engine, batch_max=3, batch_wait_ms=50)
    group.start()
    connections = []

    def record(conn):
        connections.append(conn.execute(text("SELECT 1")).scalar())
        # Each batch runs in its own transaction; the result keeps it alive.
        return conn.get_transaction()

    async def scenario():
        return await asyncio.gather(*(group.submit(record) for _ in range(7)))

    try:
        used = asyncio.run(scenario())
    finally:
        group.close()
    assert len({id(transaction) for transaction in used}) == 3


def test_close_flushes_pending(engine):
    local.create_all(engine)
    group = GroupCommitWriter(engine, batch_max=1000, batch_wait_ms=200)
    group.start()
    futures = []

    async def scenario():
        for i in range(20):
            futures.append(asyncio.ensure_future(group.submit(add(i))))
        await asyncio.sleep(0)
        await asyncio.to_thread(group.close)
        return await asyncio.gather(*futures)

    assert asyncio.run(scenario()) == list(range(20))
    assert count(engine) == 20


def test_close_returns_connection(engine, writer):
    assert writer.run_sync(add(1)) == 1
    writer.close()
    assert engine.pool.checkedout() == 0


def test_submit_after_close_raises(engine):
    group = GroupCommitWriter(engine)
    group.start()
    group.close()
    with pytest.raises(WriterClosedError):
        group.run_sync(add(1))


def test_submit_before_start_raises(engine):
    group = GroupCommitWriter(engine)
    with pytest.raises(WriterClosedError, match="call start"):
        group.run_sync(add(1))


def insert_each(conn, ids):
    # Inserts every item first, so a failure leaves rows that must roll back.
    for item_id in ids:
        conn.execute(insert(items).values(id=abs(item_id)))
    if any(item_id < 0 for item_id in ids):
        raise ValueError("negative id")
    return list(ids)


def test_failed_batch_call_rolls_back_its_rows(engine, writer):
    async def scenario():
        return await asyncio.gather(
            *(writer.submit_batched(insert_each, i) for i in (1, 2, -3, 4)),
            return_exceptions=True,
        )

    first, second, third, fourth = asyncio.run(scenario())
    assert (first, second, fourth) == (1, 2, 4)
    assert isinstance(third, ValueError)
    with engine.connect() as conn:
        ids = sorted(conn.execute(select(items.c.id)).scalars())
    assert ids == [1, 2, 4]


def _queued_units(group, count):
    for _ in range(count):
        group._queue.put(
            writer_module._Unit(add(0), None, None, None, concurrent.futures.Future())
        )


@pytest.mark.parametrize(
    ("last_size", "queued", "expected_sleeps"),
    [
        pytest.param(3, 3, [], id="as-large-as-last"),
        pytest.param(5, 3, [0.01], id="smaller"),
        pytest.param(1, 1, [0.01], id="lone-unit"),
    ],
)
def test_collect_waits_only_below_last_size(
    engine, monkeypatch, last_size, queued, expected_sleeps
):
    sleeps: list[float] = []
    fake_time = SimpleNamespace(monotonic=time.monotonic, sleep=sleeps.append)
    monkeypatch.setattr(writer_module, "time", fake_time)
    group = GroupCommitWriter(engine, batch_max=64, batch_wait_ms=1000, batch_gap_ms=10)
    group._last_size = last_size
    _queued_units(group, queued)

    batch, stopping = group._collect(group._queue.get())

    assert len(batch) == queued
    assert not stopping
    assert sleeps == expected_sleeps


def test_kept_connection_replaced_after_idle(engine):
    group = GroupCommitWriter(engine)
    first = group._connection()
    assert group._connection() is first

    group._conn_used_at -= writer_module.CONNECTION_IDLE_S + 1
    second = group._connection()

    assert second is not first
    assert first.closed
    group._release_connection()
    assert engine.pool.checkedout() == 0


@pytest.mark.postgres
def test_writer_survives_dropped_idle_connection(postgres_engine):
    local.create_all(postgres_engine)
    group = GroupCommitWriter(postgres_engine)
    group.start()
    try:
        pid = group.run_sync(
            lambda conn: conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        )
        with postgres_engine.connect() as admin:
            admin.exec_driver_sql("SELECT pg_terminate_backend(%s)", (pid,))
        # As if the writer had been idle: its next batch checks out afresh.
        group._conn_used_at -= writer_module.CONNECTION_IDLE_S + 1

        assert group.run_sync(add(2)) == 2
    finally:
        group.close()
    assert count(postgres_engine) == 1
