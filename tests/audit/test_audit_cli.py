"""``agentiam audit trail|verify|export|sign-head`` on a SQLite data dir."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from agentiam.api.context import close_context, open_context
from agentiam.audit.events import AuditEvent
from agentiam.cli.main import main
from agentiam.config import load_settings

ORCHESTRATOR = "spiffe://agentiam.local/agent/orchestrator/i-1"
WORKER = "spiffe://agentiam.local/agent/refund-worker/i-2"


@pytest.fixture
def data_dir(tmp_path: Path, cli_environment: None) -> Path:
    """A data dir with a grant approval, a task tree and one signed tree head."""
    directory = tmp_path / "data"
    ctx = open_context(load_settings(environ={}, overrides={"data_dir": directory}))
    if ctx.audit.keyring is None:
        ctx.audit.keyring = ctx.keyring
    events = [
        AuditEvent("grant.approved", "allow", "approved", human="alice",
                   grant_id="g-1", receipt_hash="r" * 43, actors=[ORCHESTRATOR]),
        AuditEvent("task.opened", "none", "opened", human="alice", grant_id="g-1",
                   actors=[ORCHESTRATOR], task_path=["t-root"]),
        AuditEvent("token.exchanged", "allow", "issued", human="alice",
                   grant_id="g-1", actors=[WORKER, ORCHESTRATOR],
                   task_path=["t-root", "t-refund"],
                   request={"method": "POST", "endpoint": "/token"}),
        AuditEvent("decision", "deny", "refused", reason="amount above limit",
                   human="alice", grant_id="g-1", actors=[WORKER, ORCHESTRATOR],
                   task_path=["t-root", "t-refund"],
                   request={"method": "POST", "path": "/refunds", "status": 403}),
    ]  # fmt: skip

    async def run() -> None:
        for event in events:
            await ctx.audit.record(event)
        await ctx.audit.sign_tree_head()

    try:
        asyncio.run(run())
    finally:
        close_context(ctx)
    return directory


def _database(data_dir: Path) -> Path:
    return next(data_dir.glob("*.db"))


def test_verify_succeeds(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "verify", "--data-dir", str(data_dir)]) == 0
    assert "audit log verified:" in capsys.readouterr().out


def test_verify_names_edited_position(data_dir: Path, capsys) -> None:
    with sqlite3.connect(_database(data_dir)) as conn:
        canonical = conn.execute(
            "SELECT canonical FROM audit_events WHERE seq = 3"
        ).fetchone()[0]
        edited = bytes(canonical).replace(b'"deny"', b'"allow"')
        conn.execute("UPDATE audit_events SET canonical = ? WHERE seq = 3", (edited,))

    assert main(["audit", "verify", "--data-dir", str(data_dir)]) == 1
    err = capsys.readouterr().err
    assert "audit log verification failed at position 3:" in err
    assert "event edited" in err


def test_verify_names_deleted_position(data_dir: Path, capsys) -> None:
    with sqlite3.connect(_database(data_dir)) as conn:
        conn.execute("DELETE FROM audit_events WHERE seq = 1")

    assert main(["audit", "verify", "--data-dir", str(data_dir)]) == 1
    assert "position 1: expected seq 1, found seq 2" in capsys.readouterr().err


def test_verify_json_output(data_dir: Path, capsys) -> None:
    with sqlite3.connect(_database(data_dir)) as conn:
        conn.execute("DELETE FROM audit_events WHERE seq = 3")

    code = main(["audit", "verify", "--data-dir", str(data_dir), "--output", "json"])
    assert code == 1
    summary = json.loads(capsys.readouterr().out)
    assert summary["ok"] is False
    assert summary["events"] == 3
    assert summary["problems"][0].startswith("tree head 1 (size 4): the log has only 3")


def test_trail_text(data_dir: Path, capsys) -> None:
    assert main(["audit", "trail", "t-root", "--data-dir", str(data_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("human alice approved grant g-1")
    assert lines[1] == "task t-root"
    assert "task.opened none opened" in lines[2]
    assert lines[3] == "`-- task t-refund"
    assert "token.exchanged allow issued agent " + WORKER in lines[4]
    assert "decision deny refused agent " + WORKER in lines[5]
    assert lines[5].endswith("POST /refunds (amount above limit)")


def test_trail_json(data_dir: Path, capsys) -> None:
    code = main(["audit", "trail", "t-refund", "--data-dir", str(data_dir),
                 "--output", "json"])  # fmt: skip
    assert code == 0
    body = json.loads(capsys.readouterr().out)
    assert body["task_id"] == "t-refund"
    assert [item["seq"] for item in body["approvals"]] == [0]
    assert [item["seq"] for item in body["tasks"]["events"]] == [2, 3]


def test_trail_unknown_task(data_dir: Path, capsys) -> None:
    assert main(["audit", "trail", "nope", "--data-dir", str(data_dir)]) == 1
    assert capsys.readouterr().err == (
        "agentiam: error: Task 'nope' was not found in the audit log.\n"
    )


def test_export_writes_json_lines(data_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "audit.jsonl"
    assert main(["audit", "export", str(target), "--data-dir", str(data_dir)]) == 0
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    kinds = [line["kind"] for line in lines]
    assert kinds[0] == "header"
    assert kinds.count("event") >= 4
    assert kinds[-1] == "tree_head"
    event_lines = [line for line in lines if line["kind"] == "event"]
    assert [line["seq"] for line in event_lines] == list(range(len(event_lines)))


def test_sign_head(data_dir: Path, capsys) -> None:
    assert main(["audit", "sign-head", "--data-dir", str(data_dir),
                 "--output", "json"]) == 0  # fmt: skip
    head = json.loads(capsys.readouterr().out)
    assert head["tree_size"] >= 4
    assert head["signature"].count(".") == 2


def test_verify_reports_deleted_node_without_repair(
    tmp_path: Path, cli_environment: None, capsys: pytest.CaptureFixture
):
    directory = tmp_path / "data"
    ctx = open_context(load_settings(environ={}, overrides={"data_dir": directory}))

    # 70 events complete the first node of 64 leaves, (level 6, idx 0).
    async def run() -> None:
        for n in range(70):
            await ctx.audit.record(
                AuditEvent("task.opened", "none", "opened", task_path=[f"t-{n}"])
            )
        await ctx.audit.sign_tree_head()

    try:
        asyncio.run(run())
    finally:
        close_context(ctx)
    with sqlite3.connect(_database(directory)) as conn:
        conn.execute("DELETE FROM audit_tree_nodes WHERE level = 6 AND idx = 0")

    first = main(["audit", "verify", "--data-dir", str(directory)])
    first_err = capsys.readouterr().err
    second = main(["audit", "verify", "--data-dir", str(directory)])
    with sqlite3.connect(_database(directory)) as conn:
        kept = conn.execute("SELECT count(*) FROM audit_tree_nodes").fetchone()[0]

    assert first == 1
    assert "audit_tree_nodes has no row for level 6 idx 0" in first_err
    assert second == 1
    assert kept == 0


def test_export_file_is_private(data_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "audit.jsonl"
    old_umask = os.umask(0o022)
    try:
        code = main(["audit", "export", str(target), "--data-dir", str(data_dir)])
    finally:
        os.umask(old_umask)

    assert code == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_export_into_directory(data_dir: Path, tmp_path: Path, capsys) -> None:
    code = main(["audit", "export", str(tmp_path), "--data-dir", str(data_dir)])

    assert code == 1
    assert capsys.readouterr().err == (
        f"agentiam: error: export file '{tmp_path}' is a directory\n"
    )


def test_export_missing_directory(data_dir: Path, tmp_path: Path, capsys) -> None:
    target = tmp_path / "missing" / "audit.jsonl"

    code = main(["audit", "export", str(target), "--data-dir", str(data_dir)])

    assert code == 1
    assert capsys.readouterr().err == (
        f"agentiam: error: export file '{target}' cannot be created: its directory "
        "was not found\n"
    )


@pytest.mark.parametrize(
    ("name", "problem"),
    [("missing.jsonl", "not found"), ("", "is a directory")],
    ids=["missing", "directory"],
)
def test_verify_unreadable_export(
    data_dir: Path, tmp_path: Path, capsys, name: str, problem: str
) -> None:
    path = str(tmp_path / name) if name else str(tmp_path)

    code = main(["audit", "verify", path, "--data-dir", str(data_dir)])

    assert code == 1
    assert capsys.readouterr().err == (
        f"agentiam: error: export file '{path}' {problem}\n"
    )


def test_verify_missing_jwks_file(data_dir: Path, tmp_path: Path, capsys) -> None:
    export = tmp_path / "audit.jsonl"
    assert main(["audit", "export", str(export), "--data-dir", str(data_dir)]) == 0
    capsys.readouterr()
    jwks = tmp_path / "jwks.json"

    code = main(["audit", "verify", str(export), "--jwks", str(jwks)])

    assert code == 1
    assert capsys.readouterr().err == f"agentiam: error: JWKS file '{jwks}' not found\n"


def test_verify_missing_trusted_head_file(
    data_dir: Path, tmp_path: Path, capsys
) -> None:
    head = tmp_path / "head.jws"

    code = main(
        ["audit", "verify", "--trusted-head", str(head), "--data-dir", str(data_dir)]
    )

    assert code == 1
    assert capsys.readouterr().err == (
        f"agentiam: error: trusted tree head file '{head}' not found\n"
    )


def test_verify_counts_one_head(data_dir: Path, capsys) -> None:
    assert main(["audit", "verify", "--data-dir", str(data_dir)]) == 0

    assert capsys.readouterr().out == (
        "audit log verified: 4 events, 1 signed tree head\n"
    )
