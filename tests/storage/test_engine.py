from __future__ import annotations

import pytest
from sqlalchemy import event, inspect, text

from agentiam.storage.engine import create_engine
from agentiam.storage.errors import NulCharacterError, StorageError
from agentiam.storage.migrate import upgrade


def test_sqlite_pragmas(sqlite_engine):
    with sqlite_engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10000
        # 2 is MEMORY: savepoint journals stay off the disk.
        assert conn.exec_driver_sql("PRAGMA temp_store").scalar() == 2


def test_sqlite_immediate_takes_write_lock(sqlite_engine):
    with sqlite_engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE lock_items (id INTEGER PRIMARY KEY)")
    other = sqlite_engine.connect()
    writer = sqlite_engine.connect().execution_options(sqlite_immediate=True)
    try:
        with writer.begin():
            # BEGIN IMMEDIATE holds the write lock before any statement runs.
            raw = other.connection.driver_connection
            raw.execute("PRAGMA busy_timeout=0")
            with pytest.raises(Exception, match="database is locked"):
                raw.execute("BEGIN IMMEDIATE")
    finally:
        writer.close()
        other.close()


def test_unsupported_url():
    with pytest.raises(StorageError, match="unsupported database URL 'mysql://x'"):
        create_engine("mysql://x")


def test_upgrade_creates_keys_table(engine):
    upgrade(engine)
    tables = set(inspect(engine).get_table_names())
    assert "signing_keys" in tables
    assert "alembic_version" in tables


def test_upgrade_twice_is_noop(engine):
    upgrade(engine)
    upgrade(engine)
    with engine.connect() as conn:
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    assert version == "0002"


def test_savepoints_roll_back_and_fire_events(engine):
    names = []
    event.listen(
        engine, "rollback_savepoint", lambda conn, name, context: names.append(name)
    )
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE sp_items (id INTEGER PRIMARY KEY)")

    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO sp_items VALUES (1)")
        dropped = conn.begin_nested()
        conn.exec_driver_sql("INSERT INTO sp_items VALUES (2)")
        dropped.rollback()
        kept = conn.begin_nested()
        conn.exec_driver_sql("INSERT INTO sp_items VALUES (3)")
        kept.commit()

    with engine.connect() as conn:
        ids = sorted(conn.exec_driver_sql("SELECT id FROM sp_items").scalars())
    assert ids == [1, 3]
    assert names == ["sa_savepoint_1"]


@pytest.mark.postgres
def test_postgres_rejects_nul_parameter_before_the_driver(postgres_engine):
    with postgres_engine.connect() as conn:
        with pytest.raises(NulCharacterError, match="U\\+0000"):
            conn.execute(text("SELECT :value"), {"value": "a\x00b"})
        conn.rollback()

        assert conn.execute(text("SELECT :value"), {"value": "ab"}).scalar() == "ab"
