"""The SQLAlchemy engine factory for SQLite and PostgreSQL (psycopg 3).

SQLite runs in WAL mode with ``synchronous=FULL``, foreign keys on and a busy
timeout.  Python's ``sqlite3`` module opens transactions on its own and breaks
SAVEPOINT, so the driver's transaction handling is turned off and SQLAlchemy emits
``BEGIN`` itself (the recipe in the SQLAlchemy SQLite dialect documentation).  A
connection with the execution option ``sqlite_immediate=True`` begins with
``BEGIN IMMEDIATE``, which takes the write lock at once; the group-commit writer
uses it.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from agentiam.storage.errors import StorageError
from agentiam.storage.files import prepare_sqlite_file

SQLITE_BUSY_TIMEOUT_MS = 10_000


def create_engine(url: str, **kwargs: Any) -> Engine:
    """Create the engine for ``url`` (``sqlite:///PATH`` or ``postgresql+psycopg://``)."""
    if url.startswith("sqlite"):
        return _sqlite_engine(url, **kwargs)
    if url.startswith("postgresql+psycopg://"):
        return sqlalchemy.create_engine(url, pool_pre_ping=True, **kwargs)
    raise StorageError(
        f"unsupported database URL {url!r}: use sqlite:///PATH or postgresql+psycopg://"
    )


def _sqlite_engine(url: str, **kwargs: Any) -> Engine:
    # The file is created owner-only before SQLite opens it (see storage.files).
    prepare_sqlite_file(url)
    connect_args = {
        "check_same_thread": False,
        "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
    }
    connect_args.update(kwargs.pop("connect_args", {}))
    engine = sqlalchemy.create_engine(url, connect_args=connect_args, **kwargs)

    event.listen(engine, "connect", _on_sqlite_connect)
    event.listen(engine, "begin", _on_sqlite_begin)
    return engine


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Autocommit at the driver level: SQLAlchemy's "begin" listener starts each
    # transaction, so SAVEPOINT and RELEASE behave as SQLite documents them.
    dbapi_connection.isolation_level = None

    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def _on_sqlite_begin(connection: Connection) -> None:
    if connection.get_execution_options().get("sqlite_immediate"):
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        connection.exec_driver_sql("BEGIN")
