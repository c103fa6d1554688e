from __future__ import annotations

import argparse
import io
import subprocess
import sys
from pathlib import Path

import pytest

from agentiam.cli import approval
from agentiam.cli.files import FileAccessError
from agentiam.cli.passwords import (
    prompt_password,
    read_password_file,
    read_password_stdin,
)
from agentiam.errors import InvalidRequestError

PASSWORD = "correct horse battery staple"
# A password that is not UTF-8: 0xFF and 0xFE start no UTF-8 sequence.
NOT_UTF8 = b"\xff\xfe-password-1234"
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
    tmp_path: Path,
    *args: str,
    stdin: str | bytes | None = None,
    password_env: bytes | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``agentiam user add`` in a process whose stdin is a pipe or /dev/null.

    The process has no locale variables, so Python runs in UTF-8 mode and
    decodes standard input with the ``surrogateescape`` error handler.
    """
    env: dict[str, str | bytes] = {
        "AGENTIAM_KEK": "dGVzdC1rZWstMzItYnl0ZXMtbG9uZy1mb3ItYWdlbnQ",
        "PATH": "",
    }
    if password_env is not None:
        env["AGENTIAM_PASSWORD"] = password_env
    data_dir = str(tmp_path / "data")
    result = subprocess.run(
        [sys.executable, "-c", CLI, "user", "add", *args, "--data-dir", data_dir],
        input=stdin.encode("utf-8") if isinstance(stdin, str) else stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    return subprocess.CompletedProcess(
        result.args,
        result.returncode,
        result.stdout.decode("utf-8"),
        result.stderr.decode("utf-8"),
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


def test_user_add_rejects_piped_non_utf8(tmp_path: Path) -> None:
    result = _user_add(tmp_path, "dave", stdin=NOT_UTF8 + b"\n")

    assert result.returncode == 1
    assert result.stderr == (
        "agentiam: error: The request is invalid. Invalid password on standard "
        "input: expected UTF-8 text.\n"
    )


def test_user_add_rejects_non_utf8_env(tmp_path: Path) -> None:
    result = _user_add(tmp_path, "dave", password_env=NOT_UTF8)

    assert result.returncode == 1
    assert result.stderr == (
        "agentiam: error: The request is invalid. Invalid password in "
        "$AGENTIAM_PASSWORD: expected UTF-8 text.\n"
    )


def test_user_add_rejects_non_utf8_file(tmp_path: Path) -> None:
    (tmp_path / "bad.pw").write_bytes(NOT_UTF8 + b"\n")

    result = _user_add(tmp_path, "dave", "--password-file", "bad.pw")

    assert result.returncode == 1
    assert result.stderr == (
        "agentiam: error: password file 'bad.pw' is not valid UTF-8 text\n"
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


@pytest.mark.parametrize("errors", ["strict", "surrogateescape"])
def test_password_stdin_not_utf8(errors: str) -> None:
    stdin = io.TextIOWrapper(
        io.BytesIO(NOT_UTF8 + b"\n"), encoding="utf-8", errors=errors
    )
    with pytest.raises(InvalidRequestError) as info:
        read_password_stdin(stdin)
    assert info.value.hint == (
        "Invalid password on standard input: expected UTF-8 text."
    )


def test_prompt_not_utf8() -> None:
    def typed(text: str) -> str:
        return NOT_UTF8.decode("utf-8", "surrogateescape")

    with pytest.raises(InvalidRequestError) as info:
        prompt_password("Password: ", typed)
    assert info.value.hint == "Invalid password at the prompt: expected UTF-8 text."


def test_approval_rejects_non_utf8_env() -> None:
    args = argparse.Namespace(password_file=None, user="alice")
    # How CPython decodes the bytes of a non-UTF-8 environment variable.
    environ = {"AGENTIAM_PASSWORD": NOT_UTF8.decode("utf-8", "surrogateescape")}

    with pytest.raises(InvalidRequestError) as info:
        approval.read_password(args, environ=environ)

    assert str(info.value) == (
        "The request is invalid. Invalid password in $AGENTIAM_PASSWORD: "
        "expected UTF-8 text."
    )
