"""Runs of canonical export lines give the results of the per-line checks.

``verify_export`` checks canonical event lines in runs and checks the first line
of a run that fails again alone.  Every tampering is run with runs of one line,
of a few lines (so the change falls inside a run) and of the default length, and
must be found and named at the same position each time.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
from tests.audit.conftest import ISSUER

from agentiam.audit import canonical_lines, export_verifier
from agentiam.audit.chain import b64url, hash_from_b64url, next_chain_hash
from agentiam.audit.errors import AuditError
from agentiam.audit.events import AuditEvent
from agentiam.audit.export_verifier import verify_export
from agentiam.audit.log import AuditLog
from agentiam.audit.merkle import leaf_hash
from agentiam.audit.verify_report import VerifyReport
from agentiam.cli.audit import _export

EVENTS = 130
RUN_LINES = [1, 8, 1024]


def _event(number: int) -> AuditEvent:
    return AuditEvent(
        "decision",
        "allow",
        "granted",
        actors=["spiffe://agentiam.local/agent/worker/i-1"],
        details={"number": number, "note": "caf\u00e9 \u2713"},
    )


@pytest.fixture
def lines(audit_log: AuditLog, tmp_path: Path) -> list[str]:
    """Return the lines of a canonical export of ``EVENTS`` events and one head."""

    async def run() -> None:
        for number in range(EVENTS):
            await audit_log.record(_event(number))
        await audit_log.sign_tree_head()

    asyncio.run(run())
    path = tmp_path / "audit.jsonl"
    with path.open("w", encoding="utf-8") as out:
        _export(SimpleNamespace(engine=audit_log._engine, audit=audit_log), out)
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def _verify(
    lines: list[str], keyring, run_lines: int, monkeypatch, progress=None
) -> VerifyReport:
    monkeypatch.setattr(export_verifier, "_RUN_LINES", run_lines)
    return verify_export(lines, keyring.lookup, issuer=ISSUER, progress=progress)


def _event_text(line: str) -> str:
    return line[line.index('"event":') + len('"event":') : -2]


def _with_event(
    line: str, text: str, *, leaf: bytes | None = None, chain: bytes | None = None
) -> str:
    """Return the line with its event bytes replaced, and the hashes if given."""
    data = json.loads(line)
    if leaf is not None:
        data["leaf_hash"] = b64url(leaf)
    if chain is not None:
        data["chain_hash"] = b64url(chain)
    return (
        f'{{"kind":"event","seq":{data["seq"]},"leaf_hash":"{data["leaf_hash"]}",'
        f'"chain_hash":"{data["chain_hash"]}","event":{text}}}\n'
    )


def _edit(lines: list[str]) -> list[str]:
    lines[42] = lines[42].replace('"outcome":"granted"', '"outcome":"refused"')
    return lines


def _edit_and_rehash_leaf(lines: list[str]) -> list[str]:
    text = _event_text(lines[42]).replace('"granted"', '"refused"')
    lines[42] = _with_event(lines[42], text, leaf=leaf_hash(text.encode()))
    return lines


def _edit_and_rehash_all(lines: list[str]) -> list[str]:
    """Edit one event and recompute every leaf and chain hash after it."""
    _edit_and_rehash_leaf(lines)
    chain = hash_from_b64url(json.loads(lines[41])["chain_hash"])
    for index in range(42, EVENTS + 1):
        text = _event_text(lines[index])
        leaf = leaf_hash(text.encode())
        chain = next_chain_hash(chain, leaf)
        lines[index] = _with_event(lines[index], text, leaf=leaf, chain=chain)
    return lines


def _delete(lines: list[str]) -> list[str]:
    del lines[50]
    return lines


def _swap(lines: list[str]) -> list[str]:
    lines[30], lines[31] = lines[31], lines[30]
    return lines


def _duplicate(lines: list[str]) -> list[str]:
    lines.insert(21, lines[20])
    return lines


TAMPERING: dict[str, tuple[Callable[[list[str]], list[str]], str]] = {
    "edited": (
        _edit,
        "position 41: the leaf hash does not match the stored event (event edited)",
    ),
    "edited-leaf-rehashed": (
        _edit_and_rehash_leaf,
        "position 41: the chain hash does not follow from the previous event "
        "(event edited, inserted, deleted or reordered)",
    ),
    "deleted": (_delete, "position 49: expected seq 49, found seq 50 (events deleted)"),
    "swapped": (
        _swap,
        "position 29: expected seq 29, found seq 30; seq 29 comes later "
        "(events reordered)",
    ),
    "duplicated": (
        _duplicate,
        "position 20: expected seq 20, found seq 19 again (event duplicated)",
    ),
}


@pytest.mark.parametrize("run_lines", RUN_LINES)
@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_runs_name_tampering(lines, keyring, monkeypatch, case, run_lines) -> None:
    tamper, expected = TAMPERING[case]
    report = _verify(tamper(lines), keyring, run_lines, monkeypatch)
    assert str(report.first_problem) == expected


@pytest.mark.parametrize("run_lines", RUN_LINES)
def test_runs_find_rehashed_export_by_root(
    lines, keyring, monkeypatch, run_lines
) -> None:
    report = _verify(_edit_and_rehash_all(lines), keyring, run_lines, monkeypatch)
    assert report.events == EVENTS
    problem = str(report.first_problem)
    assert problem.startswith(f"tree head 1 (size {EVENTS}): the recomputed root ")
    assert problem.endswith("(events edited or reordered)")


@pytest.mark.parametrize("run_lines", RUN_LINES)
def test_runs_accept_untouched_export(lines, keyring, monkeypatch, run_lines) -> None:
    progress: list[int] = []
    monkeypatch.setattr(export_verifier, "_BATCH", 10)
    report = _verify(lines, keyring, run_lines, monkeypatch, progress.append)
    assert report.ok, report.problems
    assert (report.events, report.tree_heads, report.covered) == (EVENTS, 1, EVENTS)
    assert progress == list(range(10, EVENTS + 1, 10))


@pytest.mark.parametrize("run_lines", RUN_LINES)
def test_runs_accept_event_in_other_layout(
    lines, keyring, monkeypatch, run_lines
) -> None:
    # Event bytes that are not canonical fail the run's leaf hash check, and the
    # per-line path encodes the event again and accepts it.
    event = json.loads(_event_text(lines[45]))
    lines[45] = _with_event(lines[45], json.dumps(event, indent=1).replace("\n", ""))
    report = _verify(lines, keyring, run_lines, monkeypatch)
    assert report.ok, report.problems
    assert report.events == EVENTS


@pytest.mark.parametrize("run_lines", RUN_LINES)
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"v":2}', "version 2 is not supported"),
        ("[1]", "the event is not a JSON object"),
        ('{"v":1} ', "is missing key"),
    ],
    ids=["version-2", "array", "trailing-space"],
)
def test_runs_reject_invalid_event(
    lines, keyring, monkeypatch, run_lines, text, message
) -> None:
    # The leaf hash matches the bytes, so only the event checks can reject them.
    lines[45] = _with_event(lines[45], text, leaf=leaf_hash(text.encode()))
    with pytest.raises(AuditError, match=r"^Export line 46 is invalid: ") as caught:
        _verify(lines, keyring, run_lines, monkeypatch)
    assert message in str(caught.value)


def test_matching_finds_first_unequal_hash() -> None:
    rng = random.Random(5)
    hashes = [hashlib.sha256(rng.randbytes(8)).digest() for _ in range(200)]
    texts = [b64url(value) for value in hashes]
    assert canonical_lines._matching(hashes, texts) == 200
    assert canonical_lines._matching([], []) == 0
    for index in (0, 1, 77, 199):
        changed = list(texts)
        last = "B" if changed[index][-1] == "A" else "A"
        changed[index] = changed[index][:-1] + last
        assert canonical_lines._matching(hashes, changed) == index
