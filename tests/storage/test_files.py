"""Owner-only modes of the data directory and the SQLite files, and the warnings."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from agentiam.cli.main import main
from agentiam.storage.engine import create_engine
from agentiam.storage.files import prepare_data_dir, prepare_sqlite_file


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def _umask() -> Iterator[None]:
    # The usual umask, under which a plain mkdir gives 0755 and a file 0644.
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_prepare_data_dir_creates_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "parent" / "agentiam-data"
    prepare_data_dir(path)
    assert _mode(path) == 0o700


def test_prepare_data_dir_keeps_existing_mode_and_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "shared"
    path.mkdir(mode=0o755)
    with caplog.at_level(logging.WARNING, logger="agentiam.storage.files"):
        prepare_data_dir(path)
    assert _mode(path) == 0o755
    [record] = caplog.records
    assert record.getMessage() == "Data directory is accessible to other users"
    assert record.__dict__["path"] == str(path)
    assert record.__dict__["mode"] == "0755"


def test_prepare_data_dir_private_existing_is_quiet(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "private"
    path.mkdir(mode=0o700)
    with caplog.at_level(logging.WARNING, logger="agentiam.storage.files"):
        prepare_data_dir(path)
    assert caplog.records == []


def test_sqlite_files_are_owner_only(tmp_path: Path) -> None:
    database = tmp_path / "agentiam.db"
    engine = create_engine(f"sqlite:///{database}")
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
            conn.execute(text("INSERT INTO t VALUES (1)"))
        # WAL mode keeps the -wal and -shm files while a connection is open.
        with engine.connect() as conn:
            conn.execute(text("SELECT x FROM t")).all()
            modes = {
                name: _mode(tmp_path / name)
                for name in ("agentiam.db", "agentiam.db-wal", "agentiam.db-shm")
            }
    finally:
        engine.dispose()
    assert modes == {
        "agentiam.db": 0o600,
        "agentiam.db-wal": 0o600,
        "agentiam.db-shm": 0o600,
    }


def test_prepare_sqlite_file_keeps_existing_mode_and_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database = tmp_path / "agentiam.db"
    database.touch(mode=0o644)
    with caplog.at_level(logging.WARNING, logger="agentiam.storage.files"):
        prepare_sqlite_file(f"sqlite:///{database}")
    assert _mode(database) == 0o644
    [record] = caplog.records
    assert record.getMessage() == "Database file is accessible to other users"
    assert record.__dict__["mode"] == "0644"


@pytest.mark.parametrize(
    "url",
    ["sqlite://", "sqlite:///:memory:", "sqlite:///file:mem?mode=memory&uri=true"],
    ids=["default-memory", "memory", "uri"],
)
def test_prepare_sqlite_file_skips_memory(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    prepare_sqlite_file(url)
    assert list(tmp_path.iterdir()) == []


def test_cli_creates_private_data_dir(tmp_path: Path, cli_environment: None) -> None:
    data_dir = tmp_path / "agentiam-data"
    password = tmp_path / "password.txt"
    password.write_text("a long enough password\n")
    argv = ["user", "add", "alice", "--password-file", str(password)]

    assert main([*argv, "--data-dir", str(data_dir)]) == 0

    assert _mode(data_dir) == 0o700
    assert _mode(data_dir / "agentiam.db") == 0o600
