"""Full verification of a stored audit log against its hash chain and signed heads.

``verify_log`` streams the events once in ``seq`` order.  At each position it
checks that the positions are contiguous from 0 and that the leaf hash is the hash
of the stored canonical bytes.  It also checks that the bytes decode to a valid
event matching the indexed columns, and that the chain hash follows from the
previous one.  It then
checks every stored tree head: its signature, and that its root equals the root
recomputed from the leaves at its size.  Memory use is O(log n) for the roots plus
the sorted list of head sizes.

``verify_export`` runs the same checks over a file written by ``agentiam audit
export``, so an auditor needs only the file and the server's public keys.

Both take ``trusted_heads``: tree heads the auditor kept from earlier, outside the
log.  A log that was cut back or rewritten and then re-signed passes its own heads,
so only an outside head detects it.  Each trusted head must be verified by its
signature, the log must hold at least its size, and the root recomputed at its
size must equal its root; otherwise the problem is "log rolled back".
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from agentiam.audit.chain import (
    GENESIS_CHAIN_HASH,
    b64url,
    hash_from_b64url,
    next_chain_hash,
)
from agentiam.audit.errors import AuditError, AuditEventError, ProofError, TreeHeadError
from agentiam.audit.events import AuditEvent
from agentiam.audit.log import tree_head_from_row
from agentiam.audit.merkle import CompactRange, leaf_hash
from agentiam.audit.tables import audit_events, tree_heads
from agentiam.audit.tree_head import TreeHead, verify_tree_head
from agentiam.jose import KeyLookup

_BATCH = 10_000


@dataclass(frozen=True, slots=True)
class Problem:
    """One integrity failure: where it is and what is wrong."""

    position: str
    message: str

    def __str__(self) -> str:
        return f"{self.position}: {self.message}"


@dataclass(slots=True)
class VerifyReport:
    """The result of ``verify_log``: sizes checked and the problems found."""

    events: int = 0
    tree_heads: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether no problem was found."""
        return not self.problems

    @property
    def first_problem(self) -> Problem | None:
        """The problem at the lowest position, the one to investigate first."""
        return self.problems[0] if self.problems else None


def _rows(engine: Engine) -> Iterator[Any]:
    """Yield every event row in seq order, in batches to bound memory."""
    after = -1
    while True:
        with engine.connect() as conn:
            rows = conn.execute(
                select(audit_events)
                .where(audit_events.c.seq > after)
                .order_by(audit_events.c.seq)
                .limit(_BATCH)
            ).all()
        if not rows:
            return
        yield from rows
        after = rows[-1].seq


def _check_columns(row: Any, event: AuditEvent) -> str | None:
    """Return the name of an indexed column that disagrees with the event bytes."""
    expected = {
        "time": event.time,
        "type": event.type,
        "decision": event.decision,
        "human": event.human,
        "grant_id": event.grant_id,
        "agent": event.actors[0] if event.actors else None,
        "task_id": event.task_id,
    }
    for name, value in expected.items():
        if getattr(row, name) != value:
            return name
    return None


def _check_event(row: Any, previous_chain: bytes) -> str | None:
    """Return what is wrong with one row, or ``None``."""
    if isinstance(row, _ExportRow):
        return _check_export_event(row, previous_chain)
    canonical = bytes(row.canonical)
    leaf = leaf_hash(canonical)
    if bytes(row.leaf_hash) != leaf:
        return "the leaf hash does not match the stored event (event edited)"
    if bytes(row.chain_hash) != next_chain_hash(previous_chain, leaf):
        return (
            "the chain hash does not follow from the previous event "
            "(event edited, inserted, deleted or reordered)"
        )
    try:
        event = AuditEvent.from_dict(json.loads(canonical))
    except (ValueError, AuditEventError) as err:
        return f"the stored event is not a valid audit event: {err}"
    if event.canonical() != canonical:
        return "the stored event is not in canonical form (event edited)"
    column = _check_columns(row, event)
    if column is not None:
        return f"column {column!r} does not match the stored event (row edited)"
    return None


def _check_export_event(row: _ExportRow, previous_chain: bytes) -> str | None:
    """Check an export row, whose event was decoded and encoded when it was read.

    Its canonical bytes were made from the decoded event and its columns were
    taken from it, so only the hashes are left to compare.
    """
    leaf = leaf_hash(row.canonical)
    if row.leaf_hash != leaf:
        return "the leaf hash does not match the stored event (event edited)"
    if row.chain_hash != next_chain_hash(previous_chain, leaf):
        return (
            "the chain hash does not follow from the previous event "
            "(event edited, inserted, deleted or reordered)"
        )
    return None


def verify_log(
    engine: Engine,
    keys: KeyLookup,
    *,
    issuer: str | None = None,
    progress: Callable[[int], None] | None = None,
    trusted_heads: Sequence[TreeHead] = (),
) -> VerifyReport:
    """Recompute the chain and the Merkle roots and check them and every tree head.

    Args:
        engine: the database holding the audit tables.
        keys: finds the verification key for a tree head's ``kid``.
        issuer: the expected ``iss`` of tree heads, if it should be checked.
        progress: called with the number of events checked, every 10,000.
        trusted_heads: tree heads kept outside the log (see the module docstring).

    Returns:
        A report; ``report.problems`` lists the first chain problem found (later
        positions cannot be trusted after it), every bad tree head and every
        trusted head that the log contradicts.
    """
    return _verify_rows(
        _rows(engine), _load_heads(engine), keys, issuer, progress, trusted_heads
    )


def _verify_rows(
    rows: Iterable[Any],
    heads: Sequence[TreeHead],
    keys: KeyLookup,
    issuer: str | None,
    progress: Callable[[int], None] | None,
    trusted_heads: Sequence[TreeHead],
) -> VerifyReport:
    report = VerifyReport()
    report.tree_heads = len(heads)
    sizes = {head.size for head in heads} | {head.size for head in trusted_heads}
    roots = _scan_events(rows, report, sizes, progress)

    for number, head in enumerate(heads, start=1):
        problem = _check_head(head, roots, report.events, keys, issuer)
        if problem is not None:
            report.problems.append(
                Problem(f"tree head {number} (size {head.size})", problem)
            )
    for number, head in enumerate(trusted_heads, start=1):
        problem = _check_trusted_head(head, roots, report.events)
        if problem is not None:
            report.problems.append(
                Problem(f"trusted tree head {number} (size {head.size})", problem)
            )
    return report


def _load_heads(engine: Engine) -> list[TreeHead]:
    with engine.connect() as conn:
        rows = conn.execute(select(tree_heads).order_by(tree_heads.c.id)).all()
    return [tree_head_from_row(row) for row in rows]


def _scan_events(
    rows: Iterable[Any],
    report: VerifyReport,
    head_sizes: set[int],
    progress: Callable[[int], None] | None,
) -> dict[int, bytes]:
    """Check each event in order and return the Merkle root at each head size."""
    compact = CompactRange()
    roots = {0: compact.root()} if 0 in head_sizes else {}
    chain = GENESIS_CHAIN_HASH

    for row in rows:
        position = compact.size
        if row.seq != position:
            report.problems.append(
                Problem(
                    f"position {position}",
                    f"expected seq {position}, found seq {row.seq} (events deleted)",
                )
            )
            return roots
        problem = _check_event(row, chain)
        if problem is not None:
            report.problems.append(Problem(f"position {position}", problem))
            return roots

        chain = bytes(row.chain_hash)
        compact.append(bytes(row.leaf_hash))
        report.events = compact.size
        if compact.size in head_sizes:
            roots[compact.size] = compact.root()
        if progress is not None and compact.size % _BATCH == 0:
            progress(compact.size)
    return roots


def _check_head(
    head: TreeHead,
    roots: dict[int, bytes],
    events: int,
    keys: KeyLookup,
    issuer: str | None,
) -> str | None:
    """Return what is wrong with one stored tree head, or ``None``."""
    # NOTE: a head signed by a key that rotation has since dropped from the key
    # ring fails here as if forged, because its public key is no longer loaded.
    try:
        signed = verify_tree_head(head.signature, keys, issuer=issuer)
    except TreeHeadError as err:
        return f"the signature is invalid (forged tree head): {err}"
    if (signed.size, signed.root, signed.kid) != (head.size, head.root, head.kid):
        return "the stored columns do not match the signed tree head (row edited)"
    if head.size not in roots:
        return (
            f"the log has only {events} verified events, fewer than the signed "
            f"size {head.size} (truncated or broken before it)"
        )
    if roots[head.size] != head.root:
        return (
            f"the recomputed root {b64url(roots[head.size])} differs from the "
            f"signed root {b64url(head.root)} (events edited or reordered)"
        )
    return None


def _check_trusted_head(
    head: TreeHead, roots: dict[int, bytes], events: int
) -> str | None:
    """Return how the log contradicts a head kept outside it, or ``None``."""
    if head.size not in roots:
        return (
            f"log rolled back: the log has {events} verified events, fewer than "
            f"the trusted tree head's size {head.size}"
        )
    if roots[head.size] != head.root:
        return (
            f"log rolled back: the root recomputed at size {head.size} is "
            f"{b64url(roots[head.size])}, not the trusted root {b64url(head.root)} "
            f"(the log of {events} events is inconsistent with the trusted head)"
        )
    return None


def load_trusted_head(text: str, keys: KeyLookup, *, issuer: str | None) -> TreeHead:
    """Verify a tree head given as a compact JWS or as ``TreeHead.to_dict`` JSON.

    Raises:
        TreeHeadError: the text is neither, or its signature or claims are invalid.
    """
    text = text.strip()
    if text.startswith("{"):
        try:
            text = str(json.loads(text)["signature"])
        except (ValueError, KeyError, TypeError) as err:
            raise TreeHeadError(
                "Trusted tree head JSON has no 'signature' member."
            ) from err
    return verify_tree_head(text, keys, issuer=issuer)


@dataclass(frozen=True, slots=True)
class _ExportRow:
    """An event line of an export, with the columns ``_check_event`` compares.

    An export has no separate columns, so they are taken from the event itself.
    """

    seq: int
    leaf_hash: bytes
    chain_hash: bytes
    canonical: bytes
    time: float | None
    type: str
    decision: str
    human: str | None
    grant_id: str | None
    agent: str | None
    task_id: str | None


def verify_export(
    lines: Iterable[str],
    keys: KeyLookup,
    *,
    issuer: str | None = None,
    progress: Callable[[int], None] | None = None,
    trusted_heads: Sequence[TreeHead] = (),
) -> VerifyReport:
    """Verify a JSON-lines export like ``verify_log`` verifies the database.

    Raises:
        AuditError: a line is not valid JSON of the export format (the position
            is named), so the file cannot be checked at all.
    """
    rows: list[_ExportRow] = []
    heads: list[TreeHead] = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            _read_line(number, line, rows, heads)
    if not rows and not heads:
        raise AuditError("The export is empty; expected a header line first.")
    return _verify_rows(rows, heads, keys, issuer, progress, trusted_heads)


def _read_line(
    number: int, line: str, rows: list[_ExportRow], heads: list[TreeHead]
) -> None:
    try:
        data = json.loads(line)
        kind = data["kind"]
        if number == 1:
            if kind != "header" or data.get("version") != 1:
                raise ValueError(f"expected an export header of version 1: {line!r}")
        elif kind == "event":
            rows.append(_export_row(data))
        elif kind == "tree_head":
            heads.append(_export_head(data))
        else:
            raise ValueError(f"unknown kind {kind!r}")
    except (ValueError, KeyError, TypeError, ProofError, AuditEventError) as err:
        raise AuditError(f"Export line {number} is invalid: {err}") from err


def _export_row(data: dict[str, Any]) -> _ExportRow:
    event = AuditEvent.from_dict(data["event"])
    return _ExportRow(
        seq=int(data["seq"]),
        leaf_hash=hash_from_b64url(data["leaf_hash"], name="leaf_hash"),
        chain_hash=hash_from_b64url(data["chain_hash"], name="chain_hash"),
        canonical=event.canonical(),
        time=event.time,
        type=event.type,
        decision=event.decision,
        human=event.human,
        grant_id=event.grant_id,
        agent=event.actors[0] if event.actors else None,
        task_id=event.task_id,
    )


def _export_head(data: dict[str, Any]) -> TreeHead:
    return TreeHead(
        size=int(data["tree_size"]),
        root=hash_from_b64url(data["root_hash"], name="root_hash"),
        timestamp=float(data["timestamp"]),
        kid=str(data["kid"]),
        signature=str(data["signature"]),
        version=int(data["version"]),
    )
