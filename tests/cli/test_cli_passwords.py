from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from agentiam.cli.files import FileAccessError
from agentiam.cli.passwords import (
    prompt_password,
    read_password_file,
    read_password_stdin,
)
from agentiam.errors import InvalidRequestError

PASSWORD = "correct horse battery staple"
CLI = "import sys; from agentiam.cli.main import main; sys.exit(main())"


@pytest.mark.parametrize(
    "content",
    [PASSWORD, PASSWORD + "\n", PASSWORD + "\r\n"],
    ids=["no-newline", "newline", "crlf"],
)
def test_password_file_one_line(tmp_path: Path, content: str) -> None:
    path = tmp_path / "pw"
    path.write_bytes(content.encode("utf-8"))
    assert read_password_file(path) == PASSWORD


def test_password_file_two_lines(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.write_text(PASSWORD + "\nsecond\n", encoding="utf-8")
    with pytest.raises(InvalidRequestError) as info:
        read_password_file(path)
    assert info.value.hint == (
        f"Invalid password file {str(path)!r}: expected one line, the password."
    )


def test_prompt_closed_stdin() -> None:
    def closed(text: str) -> str:
        raise EOFError

    with pytest.raises(InvalidRequestError, match="standard input is closed"):
        prompt_password("Password: ", closed)


def _user_add(
    tmp_path: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``agentiam user add`` in a process whose stdin is a pipe or /dev/null."""
    env = {"AGENTIAM_KEK": "dGVzdC1rZWstMzItYnl0ZXMtbG9uZy1mb3ItYWdlbnQ", "PATH": ""}
    data_dir = str(tmp_path / "data")
    return subprocess.run(
        [sys.executable, "-c", CLI, "user", "add", *args, "--data-dir", data_dir],
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )


def test_user_add_without_stdin(tmp_path: Path) -> None:
    result = _user_add(tmp_path, "dave")

    assert result.returncode == 1
    assert result.stderr == (
        "agentiam: error: The request is invalid. No password given: standard "
        "input is closed. Use --password-file or AGENTIAM_PASSWORD.\n"
    )


def test_user_add_reads_piped_password(tmp_path: Path) -> None:
    result = _user_add(tmp_path, "dave", stdin=PASSWORD + "\n")

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "login         dave" in result.stdout


def test_user_add_rejects_two_piped_lines(tmp_path: Path) -> None:
    result = _user_add(tmp_path, "dave", stdin=f"{PASSWORD}\n{PASSWORD}\n")

    assert result.returncode == 1
    assert result.stderr == (
        "agentiam: error: The request is invalid. Invalid password on standard "
        "input: expected one line, the password.\n"
    )


def test_user_add_missing_password_file(tmp_path: Path) -> None:
    result = _user_add(tmp_path, "carol", "--password-file", "nope.pw")

    assert result.returncode == 1
    assert result.stderr == "agentiam: error: password file 'nope.pw' not found\n"


def test_password_file_is_directory(tmp_path: Path) -> None:
    with pytest.raises(FileAccessError) as info:
        read_password_file(tmp_path)
    assert str(info.value) == f"password file '{tmp_path}' is a directory"


def test_password_stdin_one_line() -> None:
    assert read_password_stdin(io.StringIO(PASSWORD + "\r\n")) == PASSWORD


def test_password_stdin_empty() -> None:
    with pytest.raises(InvalidRequestError) as info:
        read_password_stdin(io.StringIO(""))
    assert info.value.hint == (
        "No password given: standard input is closed. Use --password-file or "
        "AGENTIAM_PASSWORD."
    )
