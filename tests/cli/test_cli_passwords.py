from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agentiam.cli.passwords import prompt_password, read_password_file
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


def test_user_add_without_stdin(tmp_path: Path) -> None:
    env = {"AGENTIAM_KEK": "dGVzdC1rZWstMzItYnl0ZXMtbG9uZy1mb3ItYWdlbnQ", "PATH": ""}
    data_dir = str(tmp_path / "data")
    result = subprocess.run(
        [sys.executable, "-c", CLI, "user", "add", "dave", "--data-dir", data_dir],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "standard input is closed" in result.stderr
    assert "Traceback" not in result.stderr
