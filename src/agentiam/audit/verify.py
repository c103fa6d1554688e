"""Full verification of a stored audit log against its hash chain and signed heads.

``verify_log`` streams the events once in ``seq`` order.  At each position it
checks that the positions are contiguous from 0 and that the leaf hash is the hash
of the stored canonical bytes.  It also checks that the bytes decode to a valid
event matching the indexed columns, and that the chain hash follows from the
previous one.  The rows of the index tables ``audit_event_tasks`` and
``audit_event_actors`` that queries and ``audit trail`` read must be exactly the
rows the event derives: each missing, extra or changed row is a problem at the
event's seq.  In the same pass it recomputes the stored Merkle tree nodes of
``audit_tree_nodes`` from the leaf hashes and the rows of ``audit_decision_ids``
from the ``decision`` events (see ``derived_rows``).  It then checks every stored
tree head: its signature, and that its root equals the root recomputed from the
leaves at its size.  Events and their derived rows are read in batches of
``_BATCH`` seqs, so memory use is one batch plus O(log n) for the roots, the
subtree stack and the sorted list of head sizes.  The database is only read,
never repaired.

The database may hold a tail that the server has not signed yet (it signs every N
events or T milliseconds), so ``verify_log`` reports an uncovered tail as a
warning, not a problem.  ``verify_report`` states which events a tree head covers
and how trusted heads are checked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import Table, exists, select
from sqlalchemy.engine import Engine

from agentiam.audit._rfc8785 import loads
from agentiam.audit.chain import GENESIS_CHAIN_HASH, next_chain_hash
from agentiam.audit.derived_rows import DerivedTablesCheck
from agentiam.audit.errors import AuditEventError
from agentiam.audit.event_indexes import actor_rows, task_rows
from agentiam.audit.events import AuditEvent
from agentiam.audit.log import tree_head_from_row
from agentiam.audit.merkle import CompactRange, leaf_hash
from agentiam.audit.tables import (
    audit_event_actors,
    audit_event_tasks,
    audit_events,
    tree_heads,
)
from agentiam.audit.tree_head import TreeHead
from agentiam.audit.verify_report import (
    HEAD_ROW_EDITED,
    Problem,
    VerifyReport,
    check_heads,
    uncovered_problem,
)
from agentiam.jose import KeyLookup

_BATCH = 10_000
# Called with the seq, leaf hash and decoded event of each event that verifies.
_OnEvent = Callable[[int, bytes, AuditEvent], None]
# A log whose index tables were emptied would otherwise report every event, so
# the report lists this many index problems and then counts the rest.
_MAX_INDEX_PROBLEMS = 100


def _batches(engine: Engine) -> Iterator[Sequence[Any]]:
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
        yield rows
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


# The columns that hold bytes.  SQLite stores any value in any column, and the
# server fails to read an event whose bytes were replaced by text.
_BYTE_COLUMNS = ("leaf_hash", "chain_hash", "canonical")


def _check_event(row: Any, previous_chain: bytes) -> AuditEvent | str:
    """Return the event a row stores, or what is wrong with the row."""
    for name in _BYTE_COLUMNS:
        value = getattr(row, name)
        if not isinstance(value, bytes | bytearray | memoryview):
            return (
                f"column {name!r} contains {type(value).__name__}, not bytes "
                "(row edited)"
            )
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
        event = AuditEvent.from_dict(loads(canonical))
        encoded = event.canonical()
    except (ValueError, AuditEventError) as err:
        return f"the stored event is not a valid audit event: {err}"
    if encoded != canonical:
        return "the stored event is not in canonical form (event edited)"
    column = _check_columns(row, event)
    if column is not None:
        return f"column {column!r} does not match the stored event (row edited)"
    return event


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
        A report; ``report.problems`` lists the first chain problem found
        (later positions cannot be trusted after it), every bad tree head,
        every trusted head that the log contradicts, and then the index rows,
        tree nodes and decision id rows that differ from the events before
        that chain problem (for each, the first 100, then a count).  Events
        after the largest verified head are a warning in ``report.warnings``:
        the server signs its newest events later.
    """
    indexes = _IndexCheck(engine)
    derived = DerivedTablesCheck(engine)

    def check(seq: int, leaf: bytes, event: AuditEvent) -> None:
        indexes.check(seq, event)
        derived.check(seq, leaf, event)

    report, _ = _verify_rows(
        indexes.rows(derived.batches(_batches(engine))),
        _load_heads(engine),
        keys,
        issuer,
        progress,
        trusted_heads,
        check,
    )
    # The index rows, tree nodes and decision ids are derived from the events,
    # so their problems come after those of the events and the signed heads,
    # which show whether the events themselves can be trusted.
    report.problems.extend(indexes.finish())
    report.problems.extend(derived.finish(report.events))
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
    The index tables are not part of an export, so this does not read them.

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
    on_event: _OnEvent | None = None,
) -> tuple[VerifyReport, dict[int, bytes]]:
    report = VerifyReport()
    report.tree_heads = len(heads)
    sizes = {head.size for head in heads} | {head.size for head in trusted_heads}
    roots = _scan_events(rows, report, sizes, progress, on_event)
    check_heads(
        report,
        heads,
        roots,
        keys,
        issuer,
        trusted_heads,
        edited_problem=HEAD_ROW_EDITED,
    )
    return report, roots


def _load_heads(engine: Engine) -> list[TreeHead]:
    with engine.connect() as conn:
        rows = conn.execute(select(tree_heads).order_by(tree_heads.c.id)).all()
    return [_head_from_row(row) for row in rows]


def _head_from_row(row: Any) -> TreeHead:
    """Build a head from a row; one with a value of the wrong type never matches.

    SQLite stores any value in any column.  Such a row gets an empty root and
    version -1, so ``check_heads`` reports it as edited, or as forged when its
    signature is invalid too.
    """
    try:
        return tree_head_from_row(row)
    except (TypeError, ValueError):
        size = row.size if type(row.size) is int else -1
        return TreeHead(size, b"", 0.0, str(row.kid), str(row.signature), -1)


def _scan_events(
    rows: Iterable[Any],
    report: VerifyReport,
    head_sizes: set[int],
    progress: Callable[[int], None] | None,
    on_event: _OnEvent | None = None,
) -> dict[int, bytes]:
    """Check each event in order and return the Merkle root at each head size.

    When every row verifies, the root over all of them is returned as well.
    ``on_event`` is called with the seq, the leaf hash and the decoded event of
    each row that verifies.
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
        event = _check_event(row, chain)
        if isinstance(event, str):
            report.problems.append(Problem(f"position {position}", event))
            return roots
        leaf = bytes(row.leaf_hash)
        if on_event is not None:
            on_event(position, leaf, event)

        chain = bytes(row.chain_hash)
        compact.append(leaf)
        report.events = compact.size
        if compact.size in head_sizes:
            roots[compact.size] = compact.root()
        if progress is not None and compact.size % _BATCH == 0:
            progress(compact.size)
    roots[compact.size] = compact.root()
    return roots


# The key column of each index table: an event has at most one row per key.
_INDEX_KEYS = {"audit_event_tasks": "task_id", "audit_event_actors": "actor"}


class _IndexCheck:
    """Compares the index rows stored for each event with the rows it derives.

    ``rows`` reads the index rows of each batch of events just before the scan
    reaches the batch, so only one batch of index rows is in memory.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._stored: dict[str, dict[int, list[tuple[Any, ...]]]] = {
            table.name: {} for table in (audit_event_tasks, audit_event_actors)
        }
        # The largest seq whose index rows were read, or None before the first.
        self._last: int | None = None
        self._ended = False
        self._problems: list[Problem] = []
        self._unlisted = 0

    def rows(self, batches: Iterable[Sequence[Any]]) -> Iterator[Any]:
        """Yield the event rows of ``batches`` and read each batch's index rows."""
        for batch in batches:
            # The scan requests the next batch only after it checked every
            # event of this one, so rows still stored have a seq without event.
            self._report_unmatched()
            high = int(batch[-1].seq)
            self._stored = {
                table.name: _stored_rows(self._engine, table, self._last, high)
                for table in (audit_event_tasks, audit_event_actors)
            }
            self._last = high
            yield from batch
        self._ended = True

    def check(self, seq: int, event: AuditEvent) -> None:
        """Compare the stored index rows of event ``seq`` with its derived rows."""
        tasks = task_rows(seq, event)
        stored = self._stored["audit_event_tasks"].pop(seq, ())
        if set(stored) != set(tasks):
            self._compare(seq, "audit_event_tasks", tasks, stored)

        actors = actor_rows(seq, event)
        stored = self._stored["audit_event_actors"].pop(seq, ())
        if set(stored) != set(actors):
            self._compare(seq, "audit_event_actors", actors, stored)

    def finish(self) -> list[Problem]:
        """Return the index problems, after reading rows past the last event.

        Rows past the last event are only read when the scan reached it, and a
        row counts only if no event has its seq, so events appended during the
        scan are not reported.
        """
        if self._ended:
            self._report_unmatched()
            for table in (audit_event_tasks, audit_event_actors):
                for row in _rows_without_event(self._engine, table, self._last):
                    self._report_extra(int(row[0]), table.name, tuple(row))
        if self._unlisted:
            self._problems.append(
                Problem(
                    "index tables",
                    f"{self._unlisted} more index rows differ from their events "
                    f"(only the first {_MAX_INDEX_PROBLEMS} are listed)",
                )
            )
        return self._problems

    def _compare(
        self,
        seq: int,
        table: str,
        expected: Sequence[tuple[Any, ...]],
        stored: Sequence[tuple[Any, ...]],
    ) -> None:
        key = _INDEX_KEYS[table]
        derived = {row[1]: row for row in expected}
        found = {row[1]: row for row in stored}
        for name, row in derived.items():
            if name not in found:
                self._add(
                    seq,
                    f"{table} has no row for {key} {name!r} (index row deleted "
                    "or edited)",
                )
            elif found[name] != row:
                # Only audit_event_tasks has a column besides the key: depth.
                self._add(
                    seq,
                    f"{table} row for {key} {name!r} has depth {found[name][2]}, "
                    f"expected {row[2]} (index row edited)",
                )
        for name, row in found.items():
            if name not in derived:
                self._report_extra(seq, table, row)

    def _report_unmatched(self) -> None:
        for table, by_seq in self._stored.items():
            for seq, rows in sorted(by_seq.items()):
                for row in rows:
                    self._report_extra(seq, table, row)
            by_seq.clear()

    def _report_extra(self, seq: int, table: str, row: tuple[Any, ...]) -> None:
        self._add(
            seq,
            f"{table} has a row for {_INDEX_KEYS[table]} {row[1]!r} that the "
            "event does not derive (index row inserted or edited)",
        )

    def _add(self, seq: int, message: str) -> None:
        if len(self._problems) < _MAX_INDEX_PROBLEMS:
            self._problems.append(Problem(f"seq {seq}", message))
        else:
            self._unlisted += 1


def _stored_rows(
    engine: Engine, table: Table, low: int | None, high: int
) -> dict[int, list[tuple[Any, ...]]]:
    """Return the rows of ``table`` with ``low < seq <= high``, grouped by seq.

    Without ``low`` the range has no lower end, so rows with a negative seq are
    read with the first batch.
    """
    query = select(table).where(table.c.seq <= high)
    if low is not None:
        query = query.where(table.c.seq > low)
    with engine.connect() as conn:
        rows = conn.execute(query).fetchall()
    found: dict[int, list[tuple[Any, ...]]] = {}
    for row in rows:
        found.setdefault(row[0], []).append(tuple(row))
    return found


def _rows_without_event(engine: Engine, table: Table, after: int | None) -> list[Any]:
    """Return the rows of ``table`` after seq ``after`` whose seq has no event."""
    query = select(table).where(~exists().where(audit_events.c.seq == table.c.seq))
    if after is not None:
        query = query.where(table.c.seq > after)
    with engine.connect() as conn:
        return list(conn.execute(query.order_by(table.c.seq)).all())
