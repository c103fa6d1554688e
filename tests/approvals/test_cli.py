"""Tests of ``agentiam approval``: password sources and the parser."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from agentiam.cli.approval import read_password, register, run


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--output", default="text")
    register(parser.add_subparsers(dest="noun"))
    return parser.parse_args(["approval", *argv])


def never_prompt(text: str) -> str:
    raise AssertionError(f"unexpected prompt {text!r}")


def test_password_file_wins(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.write_text("from-file\n", encoding="utf-8")
    args = parse("list", "--user", "alice", "--password-file", str(path))

    password = read_password(
        args, environ={"AGENTIAM_PASSWORD": "from-env"}, prompt=never_prompt
    )

    assert password == "from-file"


def test_password_from_environment() -> None:
    args = parse("list", "--user", "alice")

    password = read_password(
        args, environ={"AGENTIAM_PASSWORD": "from-env"}, prompt=never_prompt
    )

    assert password == "from-env"


def test_password_prompt_last() -> None:
    args = parse("approve", "apr_1", "--user", "alice")
    prompts: list[str] = []

    def prompt(text: str) -> str:
        prompts.append(text)
        return "typed"

    assert read_password(args, environ={}, prompt=prompt) == "typed"
    assert prompts == ["Password for alice: "]


def test_parser_sets_func_and_id() -> None:
    args = parse("deny", "apr_1", "--user", "alice")

    assert args.func is run
    assert args.verb == "deny"
    assert args.id == "apr_1"


def test_parser_requires_user() -> None:
    with pytest.raises(SystemExit):
        parse("list")


def test_missing_password_file_fails(tmp_path: Path) -> None:
    args = parse("list", "--user", "alice", "--password-file", str(tmp_path / "no"))
    errors: list[str] = []

    class Sink:
        def write(self, text: str) -> int:
            errors.append(text)
            return len(text)

    code = run(args, stderr=Sink(), environ={}, prompt=never_prompt)  # type: ignore[arg-type]

    assert code == 1
    assert errors[0].startswith("agentiam: error: ")
