"""Commands that read or change a data directory refuse one that does not exist.

Otherwise a mistyped ``--data-dir`` would create an empty directory, in which a
list prints nothing, ``key list`` shows a new key and ``audit trail`` finds no
event.  Only the verbs that add something may create the directory.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.storage.conftest import postgres_schema

from agentiam.cli.main import main


@pytest.fixture(autouse=True)
def _environment(cli_environment: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTIAM_PASSWORD", raising=False)


@pytest.mark.parametrize(
    "command",
    [
        ["user", "list"],
        ["user", "disable", "alice"],
        ["agent-class", "list"],
        ["agent-class", "show", "support-bot"],
        ["task", "list"],
        ["task", "close", "tsk_x"],
        ["grant", "list"],
        ["grant", "revoke", "grt_x"],
        ["agent", "revoke", "spiffe://agentiam.local/agent/worker/i-1"],
        ["session", "revoke", "sid-0001"],
        ["key", "list"],
        ["key", "rotate"],
        ["approval", "list", "--user", "alice"],
        ["audit", "trail", "tsk_x"],
        ["audit", "export", "out.jsonl"],
        ["audit", "sign-head"],
    ],
    ids=lambda command: "-".join(command[:2]),
)
def test_command_rejects_missing_data_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    missing = tmp_path / "agentiam-dta"

    code = main([*command, "--data-dir", str(missing)])

    assert code == 1
    assert capsys.readouterr().err.endswith(
        f"database file '{missing / 'agentiam.db'}' does not exist; check "
        "--data-dir or --database-url\n"
    )
    assert not missing.exists()


def test_add_creates_data_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "fresh"
    password = tmp_path / "password.txt"
    password.write_text("a long enough password\n")

    argv = ["user", "add", "alice", "--password-file", str(password)]

    code = main([*argv, "--data-dir", str(data_dir)])

    assert code == 0, capsys.readouterr().err
    assert (data_dir / "agentiam.db").is_file()
    assert main(["user", "list", "--data-dir", str(data_dir)]) == 0
    assert "alice" in capsys.readouterr().out


def test_memory_database_needs_no_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["task", "list", "--data-dir", str(tmp_path / "d")]

    code = main([*argv, "--database-url", "sqlite:///:memory:", "--output", "json"])

    assert code == 0, capsys.readouterr().err
    assert capsys.readouterr().out.strip() == "[]"


@pytest.fixture
def empty_schema() -> Iterator[str]:
    """The URL of a fresh, empty PostgreSQL schema, dropped afterwards."""
    with postgres_schema("agentiam_cli") as url:
        yield url


@pytest.mark.postgres
def test_command_rejects_empty_postgres_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], empty_schema: str
) -> None:
    argv = ["task", "list", "--data-dir", str(tmp_path / "d")]

    code = main([*argv, "--database-url", empty_schema])

    assert code == 1
    assert capsys.readouterr().err == (
        f"agentiam: error: database {empty_schema!r} has no agentiam tables; check "
        "--database-url, or run 'agentiam serve' or an add command on it first\n"
    )
    assert not (tmp_path / "d").exists()


@pytest.mark.postgres
def test_add_sets_up_postgres_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], empty_schema: str
) -> None:
    password = tmp_path / "password.txt"
    password.write_text("a long enough password\n")
    common = ["--data-dir", str(tmp_path / "d"), "--database-url", empty_schema]

    added = main(["user", "add", "alice", "--password-file", str(password), *common])
    listed = main(["user", "list", *common])

    assert added == 0
    assert listed == 0
    assert "alice" in capsys.readouterr().out


def test_unopenable_database_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "d"
    (data_dir / "agentiam.db").mkdir(parents=True)
    password = tmp_path / "password.txt"
    password.write_text("a long enough password\n")
    argv = ["user", "add", "alice", "--password-file", str(password)]

    code = main([*argv, "--data-dir", str(data_dir)])

    assert code == 1
    assert capsys.readouterr().err == (
        "agentiam: error: database error: unable to open database file\n"
    )


def test_approval_checks_database_before_password(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    missing = tmp_path / "missing"

    code = main(["approval", "list", "--user", "alice", "--data-dir", str(missing)])

    assert code == 1
    assert "does not exist; check --data-dir" in capsys.readouterr().err
