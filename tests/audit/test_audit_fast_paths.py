"""The append, proof and export-verify fast paths give the reference results.

Each fast path is compared with the plain computation it replaces: batch tree
nodes, recent leaves in memory, and hashing the event bytes of a canonical export
line.  The export verifier must still find an edit in a canonical line.
"""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from types import SimpleNamespace

import pytest
from tests.audit.conftest import ISSUER

from agentiam.audit.chain import b64url
from agentiam.audit.errors import AuditError
from agentiam.audit.events import AuditEvent
from agentiam.audit.export_verifier import _ExportScan, verify_export
from agentiam.audit.log import AuditLog
from agentiam.audit.merkle import (
    LeafHashes,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
)
from agentiam.audit.tree import batch_nodes, nodes_for_leaves
from agentiam.audit.verify_report import VerifyReport
from agentiam.cli.audit import _export


def _event(number: int) -> AuditEvent:
    return AuditEvent(
        "decision",
        "allow",
        "granted",
        actors=["spiffe://agentiam.local/agent/worker/i-1"],
        task_path=["t-root", f"t-{number % 3}"],
        details={"number": number, "note": "caf\u00e9 \u2713"},
    )


def _leaves(count: int) -> list[bytes]:
    return [leaf_hash(str(number).encode()) for number in range(count)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_batch_nodes_match_whole_log_nodes(seed: int) -> None:
    leaves = _leaves(700)
    expected = {
        (row["level"], row["idx"]): row["hash"] for row in nodes_for_leaves(leaves)
    }
    found: dict[tuple[int, int], bytes] = {}
    cuts = sorted(random.Random(seed).sample(range(1, 700), 25))
    for first, end in zip([0, *cuts], [*cuts, 700], strict=True):
        nodes = batch_nodes(
            first,
            leaves[first:end],
            stored_leaves=lambda start, stop: leaves[start:stop],
            stored_node=lambda level, index: found.get((level, index)),
        )
        found.update({(level, index): value for level, index, value in nodes})
    assert found == expected


def test_batch_nodes_refuse_missing_stored_leaves() -> None:
    leaves = _leaves(64)
    with pytest.raises(AuditError, match=r"leaves 0 to 9 are incomplete: found 3"):
        batch_nodes(
            10,
            leaves[10:],
            stored_leaves=lambda start, stop: leaves[:3],
            stored_node=lambda level, index: None,
        )


def _record(log: AuditLog, count: int, first: int = 0) -> None:
    async def run() -> None:
        await asyncio.gather(*(log.record(_event(n)) for n in range(first, count)))

    asyncio.run(run())


def _reference(log: AuditLog, size: int) -> LeafHashes:
    return LeafHashes([log.get(seq).leaf_hash for seq in range(size)])  # type: ignore[union-attr]


def test_proofs_from_recent_leaves_match_reference(audit_log: AuditLog) -> None:
    _record(audit_log, 300)
    reference = _reference(audit_log, 300)
    for size in (1, 63, 64, 65, 200, 300):
        assert audit_log.root(size) == reference.root(size)
        for seq in range(0, size, 7):
            assert audit_log.inclusion_proof(seq, size) == inclusion_proof(
                seq, size, reference.subtree_root
            )


def test_proofs_after_reopen_read_stored_leaves(audit_log: AuditLog, database) -> None:
    _record(audit_log, 150)
    engine, writer = database
    reopened = AuditLog(engine=engine, writer=writer, tree_head_every=0)
    reference = _reference(audit_log, 150)

    for seq in range(0, 150, 11):
        assert reopened.inclusion_proof(seq, 150) == inclusion_proof(
            seq, 150, reference.subtree_root
        )
    assert reopened.consistency_proof(70, 150) == consistency_proof(
        70, 150, reference.subtree_root
    )


def test_recent_leaves_restart_after_a_gap(audit_log: AuditLog, database) -> None:
    _record(audit_log, 70)
    _, writer = database
    # An event appended in a caller's unit of work never reaches memory.
    writer.run_sync(lambda conn: audit_log.record_in(conn, _event(70)))
    _record(audit_log, 140, first=71)
    reference = _reference(audit_log, 140)

    for seq in (0, 69, 70, 71, 139):
        assert audit_log.inclusion_proof(seq, 140) == inclusion_proof(
            seq, 140, reference.subtree_root
        )


def test_export_scan_root_at_every_size() -> None:
    leaves = _leaves(300)
    scan = _ExportScan(VerifyReport(), None)
    # Drive the tree part of the scan directly: one leaf at a time, as ``add``
    # does, then the rest in one call, as a checked run of lines does.
    for leaf in leaves[:150]:
        scan.append_leaves(leaf)
    scan.append_leaves(b"".join(leaves[150:]))
    reference = LeafHashes(leaves)
    for size in range(1, 301):
        assert scan.root_at(size) == reference.root(size), size


@pytest.fixture
def export(audit_log: AuditLog, tmp_path: Path) -> Path:
    _record(audit_log, 130)
    asyncio.run(audit_log.sign_tree_head())
    path = tmp_path / "audit.jsonl"
    with path.open("w", encoding="utf-8") as out:
        _export(SimpleNamespace(engine=audit_log._engine, audit=audit_log), out)
    return path


def _verify(path: Path, keyring):
    with path.open(encoding="utf-8") as lines:
        return verify_export(lines, keyring.lookup, issuer=ISSUER)


def test_export_lines_hold_canonical_bytes(audit_log: AuditLog, export: Path) -> None:
    lines = export.read_text(encoding="utf-8").splitlines()
    for seq, line in enumerate(lines[1:131]):
        raw = line[line.index('"event":') + len('"event":') : -1]
        assert raw.encode("utf-8") == audit_log.get(seq).canonical  # type: ignore[union-attr]


def test_export_verify_accepts_canonical_lines(export: Path, keyring) -> None:
    report = _verify(export, keyring)
    assert report.ok, report.problems
    assert (report.events, report.tree_heads) == (130, 1)


def test_export_verify_finds_edit_in_canonical_line(export: Path, keyring) -> None:
    lines = export.read_text(encoding="utf-8").splitlines(keepends=True)
    assert '"outcome":"granted"' in lines[42]
    lines[42] = lines[42].replace('"outcome":"granted"', '"outcome":"refused"')
    export.write_text("".join(lines), encoding="utf-8")
    report = _verify(export, keyring)
    assert str(report.first_problem) == (
        "position 41: the leaf hash does not match the stored event (event edited)"
    )


def test_export_verify_rejects_a_second_event_member(export: Path, keyring) -> None:
    lines = export.read_text(encoding="utf-8").splitlines(keepends=True)
    forged = json.loads(lines[5])["event"]
    forged["outcome"] = "forged"
    lines[5] = lines[5].rstrip("\n")[:-1] + ',"event":' + json.dumps(forged) + "}\n"
    export.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(AuditError, match=r"^Export line 6 is invalid: "):
        _verify(export, keyring)


def test_export_verify_checks_event_of_canonical_line(export: Path, keyring) -> None:
    # A line whose event bytes hash correctly but are not an event of a known
    # version cannot come from the server, so the verifier rejects the line.
    lines = export.read_text(encoding="utf-8").splitlines(keepends=True)
    text = '{"v":2}'
    prefix = lines[1][: lines[1].index('"leaf_hash"')]
    data = json.loads(lines[1])
    lines[1] = (
        f'{prefix}"leaf_hash":"{b64url(leaf_hash(text.encode()))}",'
        f'"chain_hash":"{data["chain_hash"]}","event":{text}}}\n'
    )
    export.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(AuditError, match=r"^Export line 2 is invalid: .*version 2"):
        _verify(export, keyring)
