"""``agentiam grant|agent|session`` revocation commands on a data directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentiam.api.context import close_context, open_context
from agentiam.cli.main import main
from agentiam.config import load_settings

TEST_KEK = "dGVzdC1rZWstMzItYnl0ZXMtbG9uZy1mb3ItYWdlbnQ"


@pytest.fixture(autouse=True)
def _kek(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTIAM_KEK", TEST_KEK)


@pytest.fixture(autouse=True)
def _database(_kek: None, tmp_path: Path) -> None:
    """Create the data directory in ``tmp_path``, which these commands require."""
    close_context(open_context(load_settings(overrides={"data_dir": tmp_path})))


def test_agent_revoke_prints_entry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spiffe_id = "spiffe://agentiam.local/agent/worker/i-1"
    argv = ["agent", "revoke", spiffe_id, "--data-dir", str(tmp_path), "--output"]

    assert main([*argv, "json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert main([*argv, "json"]) == 0
    second = json.loads(capsys.readouterr().out)

    assert first["kind"] == "instance"
    assert first["already_revoked"] is False
    assert second["already_revoked"] is True


def test_session_revoke_rejects_bad_sid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["session", "revoke", "bad sid", "--data-dir", str(tmp_path)])

    assert code == 1
    assert "The id 'bad sid' is not a valid session id." in capsys.readouterr().err


def test_grant_revoke_unknown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["grant", "revoke", "grt_missing", "--data-dir", str(tmp_path)])

    assert code == 1
    assert capsys.readouterr().err == (
        "agentiam: error: Grant 'grt_missing' was not found.\n"
    )


def test_grant_list_empty(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["grant", "list", "--data-dir", str(tmp_path), "--output", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


@pytest.mark.parametrize(
    "command",
    [
        ["grant", "list"],
        ["task", "list"],
        ["agent", "revoke", "spiffe://agentiam.local/agent/worker/i-2"],
        ["session", "revoke", "sid-0001"],
    ],
)
def test_output_before_noun(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    code = main(["--output", "json", *command, "--data-dir", str(tmp_path)])

    assert code == 0
    json.loads(capsys.readouterr().out)
