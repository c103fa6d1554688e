"""Full verification of a stored audit log against its hash chain and signed heads.

``verify_log`` streams the events once in ``seq`` order.  At each position it
checks that the positions are contiguous from 0 and that the leaf hash is the hash
of the stored canonical bytes.  It also checks that the bytes decode to a valid
event matching the indexed columns, and that the chain hash follows from the
previous one.  It then
checks every stored tree head: its signature, and that its root equals the root
recomputed from the leaves at its size.  Memory use is O(log n) for the roots plus
the sorted list of head sizes.

The database may hold a tail that the server has not signed yet (it signs every N
events or T milliseconds), so ``verify_log`` reports an uncovered tail as a
warning, not a problem.  ``verify_report`` states which events a tree head covers
and how trusted heads are checked.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from agentiam.audit.chain import GENESIS_CHAIN_HASH, next_chain_hash
from agentiam.audit.errors import AuditEventError
from agentiam.audit.events import AuditEvent
from agentiam.audit.log import tree_head_from_row
from agentiam.audit.merkle import CompactRange, leaf_hash
from agentiam.audit.tables import audit_events, tree_heads
from agentiam.audit.tree_head import TreeHead
from agentiam.audit.verify_report import (
    Problem,
    VerifyReport,
    check_heads,
    uncovered_problem,
)
from agentiam.jose import KeyLookup

_BATCH = 10_000


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
        trusted_heads: tree heads kept outside the log (see ``verify_report``).

    Returns:
        A report; ``report.problems`` lists the first chain problem found (later
        positions cannot be trusted after it), every bad tree head and every
        trusted head that the log contradicts.  Events after the largest verified
        head are a warning in ``report.warnings``: the server signs its newest
        events later.
    """
    report, _ = _verify_rows(
        _rows(engine), _load_heads(engine), keys, issuer, progress, trusted_heads
    )
    problem = uncovered_problem(report)
    if problem is not None:
        report.warnings.append(problem)
    return report


def verify_rows_for_head(
    rows: Iterable[Any],
    heads: Sequence[TreeHead],
    keys: KeyLookup,
    *,
    issuer: str | None = None,
) -> tuple[VerifyReport, bytes | None]:
    """Verify event rows and tree heads as ``verify_log`` does, before signing.

    ``agentiam audit export`` signs a head over the rows it writes; this check
    keeps it from signing over a log whose chain or stored heads are broken.

    Returns:
        The report, and the Merkle root over every row when ``report.ok``, else
        ``None``.
    """
    report, roots = _verify_rows(rows, heads, keys, issuer, None, ())
    return report, roots.get(report.events) if report.ok else None


def _verify_rows(
    rows: Iterable[Any],
    heads: Sequence[TreeHead],
    keys: KeyLookup,
    issuer: str | None,
    progress: Callable[[int], None] | None,
    trusted_heads: Sequence[TreeHead],
) -> tuple[VerifyReport, dict[int, bytes]]:
    report = VerifyReport()
    report.tree_heads = len(heads)
    sizes = {head.size for head in heads} | {head.size for head in trusted_heads}
    roots = _scan_events(rows, report, sizes, progress)
    check_heads(report, heads, roots, keys, issuer, trusted_heads)
    return report, roots


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
    """Check each event in order and return the Merkle root at each head size.

    When every row verifies, the root over all of them is returned as well.
    """
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
    roots[compact.size] = compact.root()
    return roots
