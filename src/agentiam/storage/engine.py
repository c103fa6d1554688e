"""The SQLAlchemy engine factory for SQLite and PostgreSQL (psycopg 3).

SQLite runs in WAL mode with ``synchronous=FULL``, foreign keys on and a busy
timeout.  Python's ``sqlite3`` module opens transactions on its own and breaks
SAVEPOINT, so the driver's transaction handling is turned off and SQLAlchemy emits
``BEGIN`` itself (the recipe in the SQLAlchemy SQLite dialect documentation).  A
connection with the execution option ``sqlite_immediate=True`` begins with
``BEGIN IMMEDIATE``, which takes the write lock at once; the group-commit writer
uses it.

PostgreSQL ``text`` and ``varchar`` cannot contain U+0000, and psycopg raises a
``DataError`` for a parameter that does.  A PostgreSQL engine checks the string
parameters of each statement first and raises ``NulCharacterError`` instead, so
the HTTP API rejects a request that carries U+0000 with 400, not 500.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from agentiam.storage.errors import NulCharacterError, StorageError
from agentiam.storage.files import prepare_sqlite_file

SQLITE_BUSY_TIMEOUT_MS = 10_000


def create_engine(url: str, **kwargs: Any) -> Engine:
    """Create the engine for ``url`` (``sqlite:///PATH`` or ``postgresql+psycopg://``)."""
    if url.startswith("sqlite"):
        return _run_savepoints_on_driver(_sqlite_engine(url, **kwargs))
    if url.startswith("postgresql+psycopg://"):
        engine = sqlalchemy.create_engine(url, pool_pre_ping=True, **kwargs)
        event.listen(engine, "before_cursor_execute", _reject_nul_parameters)
        return _run_savepoints_on_driver(engine)
    raise StorageError(
        f"unsupported database URL {url!r}: use sqlite:///PATH or postgresql+psycopg://"
    )


def _reject_nul_parameters(
    _conn: Connection,
    _cursor: Any,
    _statement: str,
    parameters: Any,
    _context: Any,
    executemany: bool,
) -> None:
    """Raise ``NulCharacterError`` when a string parameter contains U+0000."""
    for row in parameters if executemany else (parameters,):
        values = row.values() if isinstance(row, Mapping) else row or ()
        for value in values:
            if isinstance(value, str) and "\x00" in value:
                raise NulCharacterError(
                    "a statement parameter contains the NUL character U+0000, "
                    "which PostgreSQL cannot store in text"
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
        # SQLite spills a savepoint's journal to a temporary file once it passes
        # 64 KiB (its default SQLITE_STMTJRNL_SPILL).  The rows of one token
        # exchange dirty more than 15 pages of 4 KiB, so each batch with
        # savepoints created, wrote and deleted a file.  Held in memory, the
        # journal costs no system calls.  It only undoes a savepoint and is
        # never read after a crash, so durability does not change.  The pragma
        # also keeps temporary tables and the spill of large sorts in memory.
        cursor.execute("PRAGMA temp_store=MEMORY")
    finally:
        cursor.close()


_SAVEPOINT_STATEMENTS = {
    "do_savepoint": "SAVEPOINT",
    "do_release_savepoint": "RELEASE SAVEPOINT",
    "do_rollback_to_savepoint": "ROLLBACK TO SAVEPOINT",
}


def _run_savepoints_on_driver(engine: Engine) -> Engine:
    """Send SAVEPOINT, RELEASE and ROLLBACK TO as plain SQL on the driver's cursor.

    The dialect otherwise compiles a new statement for each of them, about
    0.1 ms of CPU time per savepoint and release with SQLAlchemy 2.1, while the
    group-commit writer opens one savepoint per unit of work.  Only how the
    statement is sent changes: ``Connection.begin_nested``, its transaction
    state and the ``savepoint`` events stay SQLAlchemy's.
    """
    for method, verb in _SAVEPOINT_STATEMENTS.items():
        # An attribute of the dialect instance takes the place of its method.
        setattr(engine.dialect, method, _driver_statement(verb))
    return engine


def _driver_statement(verb: str) -> Callable[[Connection, str], None]:
    def run(connection: Connection, name: str) -> None:
        # SQLAlchemy names its savepoints sa_savepoint_<n>, so no quoting is needed.
        cursor = connection.connection.cursor()
        try:
            cursor.execute(f"{verb} {name}")
        finally:
            cursor.close()

    return run


def _on_sqlite_begin(connection: Connection) -> None:
    # Sent on the driver's connection, like the savepoint statements above,
    # because exec_driver_sql builds an execution context and result for it.
    verb = (
        "BEGIN IMMEDIATE"
        if connection.get_execution_options().get("sqlite_immediate")
        else "BEGIN"
    )
    cursor = connection.connection.cursor()
    try:
        cursor.execute(verb)
    finally:
        cursor.close()
