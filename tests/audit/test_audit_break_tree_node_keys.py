"""``agentiam audit verify`` against node rows that the scan cannot compare.

SQLite keeps a value in an INTEGER column as REAL or TEXT when it cannot convert
it losslessly, so ``audit_tree_nodes`` can contain a row at level 7, idx -0.5.
The verify scan and the loader of the in-memory tree both convert such a key
with ``int()``, and the loader then serves the row as node (7, 0).  A row below
level 6 or a TEXT hash makes opening the log raise.  Each test builds a data dir
through ``open_context``, changes one row with ``sqlite3`` and expects verify to
exit 1 naming the table, or the served proofs to stay valid.  The last test
runs verify on a data dir that does not exist.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from agentiam.api.context import close_context, open_context
from agentiam.audit.events import AuditEvent
from agentiam.audit.merkle import verify_inclusion
from agentiam.cli.main import main
from agentiam.config import load_settings

# 300 events complete the nodes (6, 0..3), (7, 0), (7, 1) and (8, 0).
EVENT_COUNT = 300
ZERO_HASH = bytes(32)


@pytest.fixture
def data_dir(tmp_path: Path, cli_environment: None) -> Path:
    """A data dir whose log has 300 events and a signed tree head over them."""
    directory = tmp_path / "data"
    ctx = open_context(load_settings(environ={}, overrides={"data_dir": directory}))
    if ctx.audit.keyring is None:
        ctx.audit.keyring = ctx.keyring
    events = [
        AuditEvent("task.opened", "none", "opened", human=f"h-{number}")
        for number in range(EVENT_COUNT)
    ]

    try:
        ctx.writer.run_sync(lambda conn: ctx.audit.record_many_in(conn, events))
        ctx.audit.note_committed(EVENT_COUNT)
        ctx.audit.sign_tree_head_sync()
    finally:
        close_context(ctx)
    return directory


def _execute(data_dir: Path, sql: str, *params: object) -> None:
    with sqlite3.connect(next(data_dir.glob("*.db"))) as conn:
        conn.execute(sql, params)


def _bad_inclusion_proofs(data_dir: Path) -> list[int]:
    """Return the seqs whose served inclusion proof fails against the signed head."""
    settings = load_settings(environ={}, overrides={"data_dir": data_dir})
    ctx = open_context(settings)
    try:
        head = ctx.audit.latest_tree_head()
        assert head is not None
        bad = []
        for seq in range(head.size):
            stored = ctx.audit.get(seq)
            assert stored is not None
            proof = ctx.audit.inclusion_proof(seq, head.size)
            if not verify_inclusion(seq, head.size, stored.leaf_hash, proof, head.root):
                bad.append(seq)
        return bad
    finally:
        close_context(ctx)


def test_verify_break_untouched_log(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", "verify", "--data-dir", str(data_dir)]) == 0
    assert "audit log verified: 300 events" in capsys.readouterr().out
    assert _bad_inclusion_proofs(data_dir) == []


@pytest.mark.parametrize(("level", "idx"), [(7, -0.5), (8, -0.5), (6, 3.5)])
def test_verify_break_fractional_node_key(
    data_dir: Path, capsys: pytest.CaptureFixture[str], level: int, idx: float
) -> None:
    sql = "INSERT INTO audit_tree_nodes VALUES (?, ?, ?)"
    _execute(data_dir, sql, level, idx, ZERO_HASH)

    assert main(["audit", "verify", "--data-dir", str(data_dir)]) == 1
    assert "audit_tree_nodes" in capsys.readouterr().err


def test_proofs_break_fractional_node_key(data_dir: Path) -> None:
    # The row sorts before (7, 0), so loading it must not put it in that place.
    _execute(data_dir, "INSERT INTO audit_tree_nodes VALUES (7, -0.5, ?)", ZERO_HASH)

    assert _bad_inclusion_proofs(data_dir) == []


@pytest.mark.parametrize("level", [5, 0, -1])
def test_verify_break_low_level_node(
    data_dir: Path, capsys: pytest.CaptureFixture[str], level: int
) -> None:
    _execute(
        data_dir, "INSERT INTO audit_tree_nodes VALUES (?, 0, ?)", level, ZERO_HASH
    )

    assert main(["audit", "verify", "--data-dir", str(data_dir)]) == 1
    err = capsys.readouterr().err
    assert f"audit_tree_nodes has a row for level {level} idx 0" in err


def test_verify_break_text_node_hash(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sql = "UPDATE audit_tree_nodes SET hash = 'abc' WHERE level = 6 AND idx = 1"
    _execute(data_dir, sql)

    assert main(["audit", "verify", "--data-dir", str(data_dir)]) == 1
    assert "level 6 idx 1" in capsys.readouterr().err


def test_verify_break_missing_data_dir(
    tmp_path: Path, cli_environment: None, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-such-dir"

    assert main(["audit", "verify", "--data-dir", str(missing)]) == 1
    captured = capsys.readouterr()
    assert "audit log verified" not in captured.out
    assert captured.err == (
        "agentiam: error: audit log verification failed: database file "
        f"'{missing / 'agentiam.db'}' does not exist; check --data-dir or "
        "--database-url\n"
    )
    assert not missing.exists()
