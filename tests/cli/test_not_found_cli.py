"""CLI commands name a missing object as "<Thing> '<id>' was not found."."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentiam.api.context import close_context, open_context
from agentiam.cli.main import main
from agentiam.config import load_settings
from agentiam.identity.passwords import hash_password
from agentiam.identity.users import UserStore

PASSWORD = "alice-password-1"


@pytest.fixture
def data_dir(tmp_path: Path, cli_environment: None) -> Path:
    """A data dir whose only user is alice."""
    directory = tmp_path / "data"
    ctx = open_context(load_settings(environ={}, overrides={"data_dir": directory}))
    try:
        ctx.writer.run_sync(
            lambda conn: UserStore(ctx.engine).add_in(
                conn, login="alice", password_hash=hash_password(PASSWORD), now=1.0
            )
        )
    finally:
        close_context(ctx)
    return directory


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["user", "disable", "nobody"], "User 'nobody' was not found."),
        (["task", "close", "tsk_nope"], "Task 'tsk_nope' was not found."),
        (["grant", "revoke", "grt_x"], "Grant 'grt_x' was not found."),
        (["agent-class", "show", "ghost"], "Agent class 'ghost' was not found."),
        (["join-token", "create", "ghost"], "Agent class 'ghost' was not found."),
        (["approval", "deny", "apr_nope", "--user", "alice"],
         "Approval request 'apr_nope' was not found."),
    ],
    ids=["user", "task", "grant", "agent-class", "join-token", "approval"],
)  # fmt: skip
def test_missing_object_message(
    data_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    message: str,
) -> None:
    monkeypatch.setenv("AGENTIAM_PASSWORD", PASSWORD)

    code = main([*argv, "--data-dir", str(data_dir)])

    assert code == 1
    assert capsys.readouterr().err == f"agentiam: error: {message}\n"
