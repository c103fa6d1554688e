"""``agentiam audit verify FILE``: each kind of tampering with an exported log.

The six cases are the ones an export verifier must catch: an edited, a deleted or
a reordered event, a truncated tail, a forged tree head, and a log rolled back
behind a tree head the auditor kept from earlier.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from agentiam.api.context import close_context, open_context
from agentiam.audit.events import AuditEvent
from agentiam.cli.main import main
from agentiam.config import load_settings
from agentiam.jose import SigningKey, sign_jws

TEST_KEK = "dGVzdC1rZWstMzItYnl0ZXMtbG9uZy1mb3ItYWdlbnQ"
EVENTS = 10


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AGENTIAM_KEK", TEST_KEK)
    for name in ("AGENTIAM_CONFIG", "AGENTIAM_DATA_DIR", "AGENTIAM_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "data"


def _record(data_dir: Path, count: int, *, sign: bool = True) -> str:
    """Append ``count`` events, sign a head over them and return its JWS."""
    ctx = open_context(load_settings(environ={}, overrides={"data_dir": data_dir}))
    ctx.audit.keyring = ctx.keyring

    async def run() -> str:
        start = ctx.audit.committed_size
        for number in range(start, start + count):
            await ctx.audit.record(
                AuditEvent("session.created", "allow", "issued", human=f"h-{number}")
            )
        return (await ctx.audit.sign_tree_head()).signature if sign else ""

    try:
        return asyncio.run(run())
    finally:
        close_context(ctx)


def _export(data_dir: Path, path: Path) -> list[dict[str, object]]:
    assert main(["audit", "export", str(path), "--data-dir", str(data_dir)]) == 0
    return [json.loads(line) for line in path.read_text().splitlines()]


def _write(path: Path, lines: list[dict[str, object]]) -> None:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def _verify(data_dir: Path, path: Path, *trusted: str) -> int:
    extra = [arg for head in trusted for arg in ("--trusted-head", head)]
    return main(["audit", "verify", str(path), "--data-dir", str(data_dir), *extra])


@pytest.fixture
def exported(data_dir: Path, tmp_path: Path) -> tuple[Path, list[dict[str, object]]]:
    _record(data_dir, EVENTS)
    path = tmp_path / "audit.jsonl"
    return path, _export(data_dir, path)


def test_export_verify_accepts_untouched(data_dir, exported, capsys) -> None:
    path, _ = exported
    assert _verify(data_dir, path) == 0
    assert (
        "audit log verified: 10 events, 1 signed tree heads" in capsys.readouterr().out
    )


def test_export_verify_finds_edited_event(data_dir, exported, capsys) -> None:
    path, lines = exported
    lines[4]["event"]["human"] = "mallory"  # type: ignore[index]
    _write(path, lines)
    assert _verify(data_dir, path) == 1
    err = capsys.readouterr().err
    assert "failed at position 3:" in err
    assert "event edited" in err


def test_export_verify_finds_deleted_event(data_dir, exported, capsys) -> None:
    path, lines = exported
    del lines[6]
    _write(path, lines)
    assert _verify(data_dir, path) == 1
    assert "position 5: expected seq 5, found seq 6" in capsys.readouterr().err


def test_export_verify_finds_reordered_events(data_dir, exported, capsys) -> None:
    path, lines = exported
    lines[3], lines[4] = lines[4], lines[3]
    lines[3]["seq"], lines[4]["seq"] = 2, 3
    _write(path, lines)
    assert _verify(data_dir, path) == 1
    err = capsys.readouterr().err
    assert "failed at position 2:" in err
    assert "reordered" in err


def test_export_verify_finds_truncated_tail(data_dir, exported, capsys) -> None:
    path, lines = exported
    _write(path, [*lines[:8], lines[-1]])
    assert _verify(data_dir, path) == 1
    err = capsys.readouterr().err
    assert "tree head 1 (size 10): the log has only 7 verified events" in err
    assert "truncated" in err


def test_export_verify_finds_forged_head(data_dir, exported, capsys) -> None:
    path, lines = exported
    head = dict(lines[-1])
    forger = SigningKey.generate("ES256")
    forged = SigningKey(str(head["kid"]), "ES256", forger.private_key)
    claims = {"ver": 1, "iss": "http://127.0.0.1:8800", "tree_size": 10,
              "root_hash": head["root_hash"], "timestamp": 1.0}  # fmt: skip
    head["signature"] = sign_jws(claims, forged, typ="tree-head+jwt")
    _write(path, [*lines[:-1], head])
    assert _verify(data_dir, path) == 1
    err = capsys.readouterr().err
    assert "tree head 1 (size 10): the signature is invalid (forged tree head)" in err


def _roll_back(data_dir: Path, size: int) -> None:
    """Cut the database back to ``size`` events and drop its tree heads."""
    with sqlite3.connect(next(data_dir.glob("*.db"))) as conn:
        for table in ("audit_events", "audit_event_tasks", "audit_event_actors"):
            conn.execute(f"DELETE FROM {table} WHERE seq >= ?", (size,))
        conn.execute("DELETE FROM audit_tree_heads")
        conn.execute("DELETE FROM audit_tree_nodes")


def test_export_verify_finds_rollback(data_dir, tmp_path, capsys) -> None:
    trusted = _record(data_dir, EVENTS)
    _roll_back(data_dir, 6)
    assert main(["audit", "sign-head", "--data-dir", str(data_dir)]) == 0
    path = tmp_path / "audit.jsonl"
    _export(data_dir, path)
    capsys.readouterr()

    # The cut log with its fresh head is consistent in itself; only the kept head
    # exposes it.
    assert _verify(data_dir, path) == 0
    assert _verify(data_dir, path, trusted) == 1
    err = capsys.readouterr().err
    assert "trusted tree head 1 (size 10): log rolled back" in err
    assert "the log has 6 verified events, fewer than" in err


def test_export_verify_finds_rewritten_history(data_dir, tmp_path, capsys) -> None:
    head_file = tmp_path / "head.jws"
    head_file.write_text(_record(data_dir, EVENTS))
    _roll_back(data_dir, 6)
    _record(data_dir, 6)
    path = tmp_path / "audit.jsonl"
    _export(data_dir, path)
    capsys.readouterr()

    assert _verify(data_dir, path) == 0
    assert _verify(data_dir, path, str(head_file)) == 1
    err = capsys.readouterr().err
    assert "trusted tree head 1 (size 10): log rolled back: the root recomputed" in err
    assert "the log of 12 events is inconsistent with the trusted head" in err


def test_database_verify_finds_rollback(data_dir, capsys) -> None:
    trusted = _record(data_dir, EVENTS)
    _roll_back(data_dir, 3)
    args = ["audit", "verify", "--data-dir", str(data_dir), "--trusted-head", trusted]
    assert main(args) == 1
    assert "log rolled back: the log has 3 verified events" in capsys.readouterr().err


def test_export_verify_trusted_head_extends(data_dir, tmp_path, capsys) -> None:
    trusted = _record(data_dir, 5)
    _record(data_dir, 5)
    path = tmp_path / "audit.jsonl"
    _export(data_dir, path)
    assert _verify(data_dir, path, trusted) == 0
