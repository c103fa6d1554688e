"""Usage errors of ``agentiam``: where they are reported and which flags parse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentiam.api.context import close_context, open_context
from agentiam.cli.main import EXIT_USAGE, main
from agentiam.config import load_settings


@pytest.fixture
def data_dir(tmp_path: Path, cli_environment: None) -> Path:
    """An empty data dir with its database created."""
    directory = tmp_path / "data"
    close_context(
        open_context(load_settings(environ={}, overrides={"data_dir": directory}))
    )
    return directory


def test_output_between_noun_and_verb(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["task", "--output", "json", "list"]) == EXIT_USAGE

    assert capsys.readouterr().err == (
        "usage: agentiam task [-h] {list,show,close} ...\n"
        "agentiam task: error: --output goes before the noun or after the verb, as "
        "in 'agentiam --output json task <verb>' or "
        "'agentiam task <verb> --output json'\n"
    )


def test_output_between_audit_sink_and_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["audit", "sink", "--output", "text", "run", "--once"]) == EXIT_USAGE

    err = capsys.readouterr().err
    assert err.endswith(
        "agentiam audit sink: error: --output goes before the noun or after the "
        "verb, as in 'agentiam --output text audit sink <verb>' or "
        "'agentiam audit sink <verb> --output text'\n"
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["--output", "json", "user", "list"],
        ["user", "list", "--output", "json"],
        ["agent-class", "list", "--output", "json"],
    ],
    ids=["before-noun", "after-user-verb", "after-class-verb"],
)
def test_output_before_noun_or_after_verb(
    data_dir: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    assert main([*argv, "--data-dir", str(data_dir)]) == 0

    assert json.loads(capsys.readouterr().out) == []


def test_unknown_flag_shows_verb_usage(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["user", "add", "carol", "--pasword-file", "alice.pw"]

    assert main(argv) == EXIT_USAGE

    err = capsys.readouterr().err
    assert err.startswith("usage: agentiam user add ")
    assert err.endswith(
        "agentiam user add: error: unrecognized arguments: --pasword-file alice.pw\n"
    )


@pytest.mark.parametrize(
    ("argv", "usage_of", "unknown"),
    [
        (["user", "add", "carol", "--password", "pw"], "user add", "--password pw"),
        (["task", "list", "--out", "json"], "task list", "--out json"),
        (["audit", "sink", "run", "--once", "--max", "2"], "audit sink run",
         "--max 2"),
    ],
    ids=["user-add", "task-list", "audit-sink-run"],
)  # fmt: skip
def test_abbreviated_flag_is_rejected(
    capsys: pytest.CaptureFixture[str], argv: list[str], usage_of: str, unknown: str
) -> None:
    assert main(argv) == EXIT_USAGE

    err = capsys.readouterr().err
    assert err.startswith(f"usage: agentiam {usage_of} ")
    assert err.endswith(
        f"agentiam {usage_of}: error: unrecognized arguments: {unknown}\n"
    )


def test_abbreviated_top_level_flag_is_rejected(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--verb", "task", "list"]) == EXIT_USAGE

    err = capsys.readouterr().err
    assert err.endswith(" error: unrecognized arguments: --verb\n")
