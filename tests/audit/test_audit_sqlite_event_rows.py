"""The SQLite insert of audit events stores the rows of the plain insert.

On SQLite the append binds hashes and canonical bytes as ``bytearray`` and
writes NULL columns as literal ``NULL``.  The stored rows, their SQLite types
and their insert order must be those of one ``executemany`` of the plain rows.
"""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import select

from agentiam.audit.events import AuditEvent
from agentiam.audit.log import _SQL, AuditLog, _insert_sqlite_events
from agentiam.audit.merkle import leaf_hash
from agentiam.audit.tables import audit_events
from agentiam.storage.engine import create_engine
from agentiam.storage.metadata import metadata

COLUMNS = (
    "seq, time, type, decision, human, grant_id, agent, task_id, "
    "leaf_hash, chain_hash, canonical"
)
READ = (
    f"SELECT rowid, {COLUMNS}, typeof(human), typeof(grant_id), typeof(agent), "
    "typeof(task_id), typeof(leaf_hash), typeof(chain_hash), typeof(canonical) "
    "FROM audit_events ORDER BY rowid"
)


def _rows() -> list[tuple[Any, ...]]:
    """Return rows with every set of NULL columns, in runs and one by one."""
    patterns = list(itertools.product([None, "value"], repeat=4))
    order = [*patterns, *patterns[::-1], *(patterns[:3] * 3)]
    rows = []
    for seq, nullable in enumerate(order):
        canonical = f'{{"n":{seq}}}'.encode()
        rows.append(
            (seq, 1_750_000_000.5 + seq, "decision", "allow", *nullable,
             leaf_hash(canonical), bytes([seq % 256]) * 32, canonical)
        )  # fmt: skip
    return rows


def _stored(path: Path, insert: Any) -> list[tuple[Any, ...]]:
    engine = create_engine(f"sqlite:///{path}")
    metadata.create_all(engine, tables=[audit_events])
    engine.dispose()
    with sqlite3.connect(path) as conn:
        insert(conn.cursor())
    with sqlite3.connect(path) as conn:
        return conn.execute(READ).fetchall()


def test_sqlite_insert_matches_plain_executemany(tmp_path: Path) -> None:
    rows = _rows()
    plain = _stored(
        tmp_path / "plain.db",
        lambda cursor: cursor.executemany(_SQL["insert_event"], rows),
    )
    fast = _stored(
        tmp_path / "fast.db", lambda cursor: _insert_sqlite_events(cursor, rows)
    )
    assert fast == plain
    assert [row[0] for row in fast] == [row[1] + 1 for row in fast]
    assert {row[-3:] for row in fast} == {("blob", "blob", "blob")}


def test_sqlite_insert_writes_nulls_and_text(tmp_path: Path) -> None:
    rows = _rows()
    fast = _stored(
        tmp_path / "fast.db", lambda cursor: _insert_sqlite_events(cursor, rows)
    )
    for row, stored in zip(rows, fast, strict=True):
        assert stored[1:12] == row
        for value, kind in zip(row[4:8], stored[12:16], strict=True):
            assert kind == ("null" if value is None else "text")


def test_recorded_events_keep_their_columns(audit_log: AuditLog, database) -> None:
    engine, writer = database
    events = [
        AuditEvent("decision", human="h-1", time=1.5),
        AuditEvent("decision", grant_id="g-1", time=2.5),
        AuditEvent("decision", actors=["spiffe://a/i-1"], task_path=["t-1"], time=3.5),
        AuditEvent("decision", time=4.5),
    ]
    seqs = writer.run_sync(lambda conn: audit_log.record_many_in(conn, events))
    assert seqs == [0, 1, 2, 3]

    with engine.connect() as conn:
        stored = conn.execute(select(audit_events).order_by(audit_events.c.seq)).all()
    assert [(row.human, row.grant_id, row.agent, row.task_id) for row in stored] == [
        ("h-1", None, None, None),
        (None, "g-1", None, None),
        (None, None, "spiffe://a/i-1", "t-1"),
        (None, None, None, None),
    ]
    for row, event in zip(stored, events, strict=True):
        assert isinstance(row.canonical, bytes)
        assert row.canonical == event.canonical()
        assert row.leaf_hash == leaf_hash(event.canonical())
