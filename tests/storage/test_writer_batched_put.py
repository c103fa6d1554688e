"""submit_batched queues its item itself: it rejects the same writers as _put.

``submit_batched`` checks that the writer runs and puts the unit on the queue
without calling ``_put``.  A writer that never started or was closed must still
raise ``WriterClosedError``, and an item must still resolve only after the
commit that contains it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from sqlalchemy import (
    Column,
    ForeignKeyConstraint,
    Integer,
    MetaData,
    Table,
    insert,
    select,
)
from sqlalchemy.engine import Connection

from agentiam.errors import TemporarilyUnavailableError
from agentiam.storage.errors import WriterClosedError
from agentiam.storage.writer import GroupCommitWriter

local = MetaData()
rows = Table("wb_rows", local, Column("id", Integer, primary_key=True))
children = Table(
    "wb_children",
    local,
    Column("id", Integer, primary_key=True),
    Column("parent_id", Integer, nullable=False),
    # Deferred, so a bad reference fails the COMMIT and not the INSERT.
    ForeignKeyConstraint(
        ["parent_id"], ["wb_rows.id"], deferrable=True, initially="DEFERRED"
    ),
)


def insert_all(conn: Connection, ids: Sequence[int]) -> list[int]:
    conn.execute(insert(rows), [{"id": item_id} for item_id in ids])
    return list(ids)


def add_child(child_id: int, parent_id: int):  # type: ignore[no-untyped-def]
    def work(conn: Connection) -> int:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA defer_foreign_keys=ON")
        conn.execute(insert(children).values(id=child_id, parent_id=parent_id))
        return child_id

    return work


def stored(engine) -> list[int]:
    with engine.connect() as conn:
        return sorted(conn.execute(select(rows.c.id)).scalars())


def test_submit_batched_before_start_raises(engine) -> None:
    group = GroupCommitWriter(engine)
    with pytest.raises(WriterClosedError, match="call start"):
        asyncio.run(group.submit_batched(insert_all, 1))


def test_submit_batched_after_close_raises(engine) -> None:
    local.create_all(engine)
    group = GroupCommitWriter(engine)
    group.start()
    group.close()
    with pytest.raises(WriterClosedError, match="call start"):
        asyncio.run(group.submit_batched(insert_all, 1))


def test_submit_batched_items_resolve_after_their_commit(engine) -> None:
    local.create_all(engine)
    group = GroupCommitWriter(engine, batch_max=64, batch_wait_ms=20)
    group.start()

    async def run() -> list[int]:
        results = await asyncio.gather(
            *(group.submit_batched(insert_all, i) for i in range(1, 41))
        )
        # Every caller resumed, so every row is committed and visible to a
        # connection of its own.
        assert stored(engine) == list(range(1, 41))
        return list(results)

    try:
        assert asyncio.run(run()) == list(range(1, 41))
    finally:
        group.close()


def test_failed_commit_fails_every_batched_item(engine) -> None:
    local.create_all(engine)
    group = GroupCommitWriter(engine, batch_max=64, batch_wait_ms=20)
    group.start()

    async def run() -> list[object]:
        # The bad reference passes its INSERT and fails the COMMIT, so the
        # items that shared its batch and succeeded on their own fail with it.
        return list(
            await asyncio.gather(
                *(group.submit_batched(insert_all, i) for i in range(1, 4)),
                group.submit(add_child(1, parent_id=12345)),
                *(group.submit_batched(insert_all, i) for i in range(4, 6)),
                return_exceptions=True,
            )
        )

    try:
        results = asyncio.run(run())
    finally:
        group.close()
    assert all(isinstance(result, TemporarilyUnavailableError) for result in results)
    assert stored(engine) == []
