"""``agentiam task list|show|close`` on a data directory."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agentiam.api.context import close_context, open_context
from agentiam.cli.main import main
from agentiam.cli.task import already_closed_message
from agentiam.config import load_settings
from agentiam.delegation.grants import Grant, GrantStore
from agentiam.identity.classes import AgentClass, AgentClassStore
from agentiam.identity.passwords import hash_password
from agentiam.identity.users import UserStore
from agentiam.tasks import task_store

NOUNS = (("task", "task"),)
KEK = "dGVzdC1rZWstMzItYnl0ZXMtbG9uZy1mb3ItYWdlbnQ"
API = "https://support.example/api"


@pytest.fixture(autouse=True)
def kek(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTIAM_KEK", KEK)


def _seed(data_dir: Path) -> tuple[str, str]:
    """Store a grant with a root task and one child; return their task ids."""
    settings = load_settings(environ={}, overrides={"data_dir": data_dir})
    ctx = open_context(settings, environ={"AGENTIAM_KEK": KEK})
    try:
        now = ctx.clock()
        run = ctx.writer.run_sync
        user = run(
            lambda conn: UserStore(ctx.engine).add_in(
                conn, login="alice", password_hash=hash_password("pw"), now=now
            )
        )
        agent_class = AgentClass(
            name="support-orchestrator",
            owner=user.id,
            scopes=frozenset({"refunds"}),
            audiences=frozenset({API}),
            may_spawn=frozenset(),
            max_depth=2,
            default_ttl=240,
            max_ttl=900,
        )
        run(lambda conn: AgentClassStore(ctx.engine).add_in(conn, agent_class, now=now))
        grant = Grant(
            id="grt-cli",
            user_id=user.id,
            agent_class=agent_class.name,
            scopes=("refunds",),
            audiences=(API,),
            authorization_details=(),
            max_depth=2,
            expires_at=now + 3600,
            receipt="receipt",
            receipt_hash="hash-cli",
            created_at=now,
        )
        run(lambda conn: GrantStore(ctx.engine).insert_in(conn, grant))
        store = task_store(ctx.engine, ctx.revocations)
        values: dict[str, Any] = {
            "grant_id": grant.id,
            "purpose": "Work ticket T-1",
            "scopes": ("refunds",),
            "audiences": (API,),
            "expires_at": now + 3600,
            "opened_by": "spiffe://agentiam.local/agent/support-orchestrator/o-1",
            "now": now,
        }
        root = run(lambda conn: store.open_in(conn, parent_id=None, **values))
        child = run(lambda conn: store.open_in(conn, parent_id=root.id, **values))
        return root.id, child.id
    finally:
        close_context(ctx)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv), nouns=NOUNS)
    out, err = capsys.readouterr()
    return code, out, err


def test_task_cli_list_show_close(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    root_id, child_id = _seed(data)
    common = ("--data-dir", str(data), "--output", "json")

    code, out, _ = _run(capsys, "task", "list", *common)
    assert code == 0
    assert sorted(row["id"] for row in json.loads(out)) == sorted([root_id, child_id])

    code, out, _ = _run(capsys, "task", "show", child_id, *common)
    assert code == 0
    assert json.loads(out)["path"] == [root_id, child_id]

    code, out, _ = _run(capsys, "task", "close", root_id, *common)
    assert code == 0
    assert sorted(json.loads(out)["closed"]) == sorted([root_id, child_id])

    code, out, _ = _run(capsys, "task", "list", "--status", "open", *common)
    assert code == 0
    assert json.loads(out) == []


def test_task_cli_show_unknown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _seed(tmp_path)
    code, _, err = _run(capsys, "task", "show", "tsk-none", "--data-dir", str(tmp_path))

    assert code == 1
    assert "'tsk-none' was not found" in err


def test_task_cli_close_twice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    root_id, child_id = _seed(data)
    common = ("--data-dir", str(data))

    code, out, _ = _run(capsys, "task", "close", root_id, *common, "--output", "json")
    assert code == 0
    first = json.loads(out)
    assert first["already_closed"] is False
    assert first["status"] == "closed"
    assert first["closed_by"] == "cli"
    closed_at = datetime.fromtimestamp(first["closed_at"], tz=UTC)
    when = closed_at.strftime("%Y-%m-%dT%H:%M:%SZ")

    code, out, err = _run(capsys, "task", "close", root_id, *common)
    assert code == 0
    assert err == ""
    assert out == f"Task '{root_id}' was already closed at {when} by cli.\n"

    code, out, _ = _run(capsys, "task", "close", child_id, *common, "--output", "json")
    assert code == 0
    assert json.loads(out) == {
        "id": child_id,
        "closed": [],
        "already_closed": True,
        "status": "closed",
        "closed_at": first["closed_at"],
        "closed_by": "cli",
    }


def test_task_cli_close_unknown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    _seed(data)

    code, out, err = _run(capsys, "task", "close", "tsk_nope", "--data-dir", str(data))

    assert code == 1
    assert out == ""
    assert err == "agentiam: error: Task 'tsk_nope' was not found.\n"


def test_already_closed_message_expired() -> None:
    result = {"id": "tsk_a", "status": "expired", "closed_at": 0.0, "closed_by": "x"}

    assert already_closed_message(result) == (
        "Task 'tsk_a' had already expired at 1970-01-01T00:00:00Z."
    )
