"""Checks of ``audit_tree_nodes`` and ``audit_decision_ids`` against the events.

Both tables are derived from the event log, and ``verify_log`` recomputes them
in its single pass over the events:

- ``audit_tree_nodes`` contains the hash of every complete, aligned subtree of
  ``2**level`` leaves with ``level >= NODE_LEVEL`` (see ``agentiam.audit.tree``),
  and proofs are built from these rows.  ``TreeNodeCheck`` recomputes each node
  from the verified leaf hashes when the leaf completing it is reached, and
  reports each node that is missing, extra or has another hash.  A node belongs
  to the seq of the leaf that completes it.
- ``audit_decision_ids`` maps the (client, decision id) of each ``decision``
  event that a resource server sent to ``POST /v1/audit/decisions`` to the
  event's seq, so a retried batch is not appended twice.  ``DecisionIdCheck``
  derives the row of each such event and reports each row that is missing, has
  another seq, or that no event at its seq derives.

The checks read the database as it is: ``AuditLog`` rebuilds a short node
table when it opens the log, but these checks only read.  Memory is one batch
of rows plus O(log n) for the subtree stack.  Rows completed by events appended
during the scan are not reported, because a row past the scanned events counts
only when no event has its seq.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    and_,
    case,
    exists,
    func,
    inspect,
    literal,
    not_,
    null,
    or_,
    select,
    tuple_,
)
from sqlalchemy.engine import Connection, Engine

from agentiam.audit.chain import b64url
from agentiam.audit.events import AuditEvent
from agentiam.audit.merkle import node_hash, root_from_leaf_hashes
from agentiam.audit.tables import audit_decision_ids, audit_events, audit_tree_nodes
from agentiam.audit.tree import NODE_LEVEL, malformed_node_rows
from agentiam.audit.verify_report import Problem

# A derived table emptied by hand would otherwise report every event, so each
# check lists this many problems and then counts the rest.
MAX_LISTED = 100
# Keys per lookup query, well below the bound parameters one statement may have
# (32,766 in SQLite since 3.32, 65,535 in PostgreSQL).
_LOOKUP_CHUNK = 500
# The largest seq a BigInteger column can store, so a node completed after it
# has no event.
_MAX_SEQ = (1 << 63) - 1

_BLOCK = 1 << NODE_LEVEL
_NODES = audit_tree_nodes.c
_IDS = audit_decision_ids.c

# A row of ``audit_decision_ids``: (client_id, decision_id, seq).
DecisionIdRow = tuple[str, str, int]


class CappedProblems:
    """Problems of one derived table: the first ``MAX_LISTED``, then a count."""

    def __init__(self, position: str, description: str) -> None:
        self._position = position
        self._description = description
        self._listed: list[Problem] = []
        self._unlisted = 0

    def add(self, seq: int, message: str) -> None:
        """Record a problem at event ``seq``."""
        self.add_at(f"seq {seq}", message)

    def add_at(self, position: str, message: str) -> None:
        """Record a problem at ``position``, for a row that belongs to no seq."""
        if len(self._listed) < MAX_LISTED:
            self._listed.append(Problem(position, message))
        else:
            self._unlisted += 1

    def problems(self) -> list[Problem]:
        """Return the listed problems and, when some were not listed, their count."""
        if not self._unlisted:
            return list(self._listed)
        return [
            *self._listed,
            Problem(
                self._position,
                f"{self._unlisted} more {self._description} (only the first "
                f"{MAX_LISTED} are listed)",
            ),
        ]


def node_seq(level: int, idx: int) -> int:
    """Return the seq of the leaf that completes node ``(level, idx)``."""
    return ((idx + 1) << max(level, 0)) - 1


class TreeNodeCheck:
    """The check that recomputes the stored tree nodes from the leaf hashes.

    ``batch`` reads the stored nodes completed by the next batch of events before
    the scan reaches it.  ``add`` takes each verified leaf hash in seq order.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._stored: dict[tuple[int, int], bytes] = {}
        # The leaf hashes of the current, incomplete block of _BLOCK leaves.
        self._block: list[bytes] = []
        # (level, hash) of the complete nodes not yet merged into a parent,
        # lowest level last: one per binary digit of the size, O(log n).
        self._stack: list[tuple[int, bytes]] = []
        self._size = 0
        self._last = -1
        self._problems = CappedProblems(
            "tree nodes", "tree nodes differ from the leaves"
        )

    def batch(self, high: int) -> None:
        """Read the stored nodes completed at seqs after the last batch to ``high``.

        The scan requests the next batch only after it added every leaf of this
        one, and every node read for a batch is completed by one of its leaves,
        so none of them is left over.
        """
        self._stored = _stored_nodes(self._engine, self._last, high)
        self._last = high

    def add(self, seq: int, leaf: bytes) -> None:
        """Add the verified leaf hash of event ``seq`` (the next one in order)."""
        self._block.append(leaf)
        self._size = seq + 1
        if len(self._block) == _BLOCK:
            self._complete_block(seq)

    def finish(self, ended: bool) -> list[Problem]:
        """Return the node problems, with the extra rows when the scan ended."""
        if ended:
            for level, idx in _nodes_outside(self._engine, self._size):
                self._report_extra(level, idx)
            for row in _malformed_nodes(self._engine):
                self._problems.add_at(
                    "tree nodes",
                    f"audit_tree_nodes has a row for level {row.level} idx {row.idx} "
                    f"that is not a tree node: {row.reason} (tree node inserted or "
                    "edited)",
                )
        return self._problems.problems()

    def _complete_block(self, seq: int) -> None:
        """Compute the nodes that leaf ``seq`` completes, as ``nodes_for_leaves``."""
        size = seq + 1
        level, value = NODE_LEVEL, root_from_leaf_hashes(self._block)
        self._block = []
        self._compare(level, (size >> level) - 1, value, seq)
        while self._stack and self._stack[-1][0] == level:
            _, left = self._stack.pop()
            level, value = level + 1, node_hash(left, value)
            self._compare(level, (size >> level) - 1, value, seq)
        self._stack.append((level, value))

    def _compare(self, level: int, idx: int, value: bytes, seq: int) -> None:
        stored = self._stored.pop((level, idx), None)
        if stored is None:
            self._problems.add(
                seq,
                f"audit_tree_nodes has no row for level {level} idx {idx} "
                "(tree node deleted or edited)",
            )
        elif stored != value:
            self._problems.add(
                seq,
                f"audit_tree_nodes row for level {level} idx {idx} has hash "
                f"{b64url(stored)}, expected {b64url(value)} (tree node edited)",
            )

    def _report_extra(self, level: int, idx: int) -> None:
        self._problems.add(
            node_seq(level, idx),
            f"audit_tree_nodes has a row for level {level} idx {idx} that the "
            "leaves do not derive (tree node inserted or edited)",
        )


def _complete_levels(size: int) -> Iterator[tuple[int, int]]:
    """Yield ``(level, count)``: how many complete nodes a log of ``size`` has."""
    level = NODE_LEVEL
    while size >> level:
        yield level, size >> level
        level += 1


def _stored_nodes(engine: Engine, low: int, high: int) -> dict[tuple[int, int], bytes]:
    """Return the stored nodes completed by the leaves ``low + 1`` to ``high``."""
    ranges = []
    for level, count in _complete_levels(high + 1):
        first = (low + 1) >> level
        if first < count:
            ranges.append(
                and_(_NODES.level == level, _NODES.idx.between(first, count - 1))
            )
    if not ranges:
        return {}
    query = select(_NODES.level, _NODES.idx, _NODES.hash).where(
        or_(*ranges), not_(malformed_node_rows(engine.dialect.name))
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return {(int(row[0]), int(row[1])): bytes(row[2]) for row in rows}


def _nodes_outside(engine: Engine, size: int) -> list[tuple[int, int]]:
    """Return the stored node keys that a log of ``size`` leaves does not derive.

    Nodes completed by an event that exists now (appended during the scan) are
    left out.
    """
    derived = [
        and_(_NODES.level == level, _NODES.idx.between(0, count - 1))
        for level, count in _complete_levels(size)
    ]
    # Malformed rows are reported by ``_malformed_nodes`` instead.
    query = (
        select(_NODES.level, _NODES.idx)
        .where(not_(malformed_node_rows(engine.dialect.name)))
        .order_by(_NODES.level, _NODES.idx)
    )
    if derived:
        query = query.where(not_(or_(*derived)))
    with engine.connect() as conn:
        keys = [(int(row[0]), int(row[1])) for row in conn.execute(query)]
        later = {
            node_seq(level, idx)
            for level, idx in keys
            if level >= NODE_LEVEL and idx >= 0 and node_seq(level, idx) <= _MAX_SEQ
        }
        appended = _existing_seqs(conn, sorted(later))
    return [key for key in keys if node_seq(*key) not in appended]


@dataclass(frozen=True, slots=True)
class MalformedNode:
    """A row of ``audit_tree_nodes`` that no tree node has, and why."""

    level: str
    idx: str
    reason: str


def _malformed_nodes(engine: Engine) -> list[MalformedNode]:
    """Return the rows that ``malformed_node_rows`` selects, in key order.

    Only SQL functions read their values, because on SQLite a hash or key of
    another type, such as text that is not UTF-8, fails to load in Python.
    """
    sqlite = engine.dialect.name == "sqlite"
    types = (
        [func.typeof(_NODES.level), func.typeof(_NODES.idx), func.typeof(_NODES.hash)]
        if sqlite
        else [literal("integer"), literal("integer"), literal("blob")]
    )
    query = (
        select(
            *types,
            _number_or_null(_NODES.level, sqlite),
            _number_or_null(_NODES.idx, sqlite),
            func.length(_NODES.hash),
        )
        .where(malformed_node_rows(engine.dialect.name))
        .order_by(_NODES.level, _NODES.idx)
        .limit(MAX_LISTED)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [_malformed(row[0], row[1], row[2], row[3], row[4], row[5]) for row in rows]


def _number_or_null(column: Any, sqlite: bool) -> Any:
    """Select ``column`` when it is a number, else NULL (only SQLite has others)."""
    if not sqlite:
        return column
    return case((func.typeof(column).in_(("integer", "real")), column), else_=null())


def _malformed(
    level_type: str,
    idx_type: str,
    hash_type: str,
    level: Any,
    idx: Any,
    length: Any,
) -> MalformedNode:
    shown_level = repr(level) if level is not None else f"({level_type})"
    shown_idx = repr(idx) if idx is not None else f"({idx_type})"
    if level_type != "integer" or idx_type != "integer":
        reason = "its level and idx must be integers"
    elif level < NODE_LEVEL:
        reason = f"levels below {NODE_LEVEL} are not stored"
    elif idx < 0:
        reason = "its idx is negative"
    elif hash_type != "blob":
        reason = f"its hash is {hash_type}, not bytes"
    else:
        reason = f"its hash is {length} bytes, not 32"
    return MalformedNode(shown_level, shown_idx, reason)


def _existing_seqs(conn: Connection, seqs: Sequence[int]) -> set[int]:
    """Return the seqs of ``seqs`` that have an event."""
    found: set[int] = set()
    for start in range(0, len(seqs), _LOOKUP_CHUNK):
        chunk = seqs[start : start + _LOOKUP_CHUNK]
        query = select(audit_events.c.seq).where(audit_events.c.seq.in_(chunk))
        found.update(int(seq) for seq in conn.execute(query).scalars())
    return found


def decision_id_key(type_: str, details: Mapping[str, Any]) -> tuple[str, str] | None:
    """Return the (client_id, decision_id) an event derives, or ``None``.

    ``POST /v1/audit/decisions`` appends ``decision`` events whose details carry
    the sending client's id and the decision id, and writes this row with them.
    """
    if type_ != "decision":
        return None
    client_id = details.get("client_id")
    decision_id = details.get("decision_id")
    if isinstance(client_id, str) and isinstance(decision_id, str):
        return client_id, decision_id
    return None


class DecisionIdCheck:
    """The check of ``audit_decision_ids`` against the rows the events derive.

    ``add`` collects the derived rows of one batch of events, and ``flush``
    looks them up by primary key when the batch is done.  Extra rows cannot be
    found by seq, which has no index, so ``finish`` counts the stored rows and
    reads them all only when there are more than the events matched.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        # A database without the table contains none of its rows.
        self._present = inspect(engine).has_table(audit_decision_ids.name)
        self._pending: list[DecisionIdRow] = []
        # The stored rows whose seq's event derives them.
        self._matched = 0
        self._problems = CappedProblems(
            "decision ids", "decision id rows differ from their events"
        )

    def add(self, seq: int, event: AuditEvent) -> None:
        """Collect the derived row of the verified event ``seq``, if it has one."""
        key = decision_id_key(event.type, event.details)
        if key is not None:
            self._pending.append((*key, seq))

    def flush(self) -> None:
        """Compare the collected rows with the stored rows of their keys."""
        pending, self._pending = self._pending, []
        stored = self._lookup([(row[0], row[1]) for row in pending])
        for client_id, decision_id, seq in pending:
            found = stored.get((client_id, decision_id))
            name = f"client_id {client_id!r} decision_id {decision_id!r}"
            if found == seq:
                self._matched += 1
            elif found is None:
                self._problems.add(
                    seq,
                    f"audit_decision_ids has no row for {name} "
                    "(decision id row deleted or edited)",
                )
            else:
                self._problems.add(
                    seq,
                    f"audit_decision_ids row for {name} has seq {found}, "
                    f"expected {seq} (decision id row edited)",
                )

    def finish(self, ended: bool, size: int) -> list[Problem]:
        """Return the decision id problems, with the extra rows when the scan ended."""
        self.flush()
        if ended and self._present:
            extra = _count_owned(self._engine, size) - self._matched
            if extra > 0:
                self._report_extra(size, extra)
        return self._problems.problems()

    def _lookup(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """Return the stored seq of each of ``keys`` that has a row."""
        if not keys or not self._present:
            return {}
        # SQLite 3.40 scans the whole table for a two-column IN list (EXPLAIN QUERY
        # PLAN), so the lookup takes one client at a time and lists its ids.
        by_client: dict[str, list[str]] = {}
        for client_id, decision_id in keys:
            by_client.setdefault(client_id, []).append(decision_id)
        found: dict[tuple[str, str], int] = {}
        with self._engine.connect() as conn:
            for client_id, ids in by_client.items():
                for start in range(0, len(ids), _LOOKUP_CHUNK):
                    query = select(_IDS.decision_id, _IDS.seq).where(
                        _IDS.client_id == client_id,
                        _IDS.decision_id.in_(ids[start : start + _LOOKUP_CHUNK]),
                    )
                    # Not converted with int(): SQLite may hold a REAL seq such
                    # as 1.5, which must not match the event at seq 1.
                    for decision_id, seq in conn.execute(query):
                        found[(client_id, decision_id)] = seq
        return found

    def _report_extra(self, size: int, extra: int) -> None:
        """Find and report the ``extra`` stored rows that no event derives."""
        for client_id, decision_id, seq in _underived_rows(self._engine, size):
            self._problems.add(
                seq,
                f"audit_decision_ids has a row for client_id {client_id!r} "
                f"decision_id {decision_id!r} that the event does not derive "
                "(decision id row inserted or edited)",
            )
            extra -= 1
            if extra == 0:
                return


def _owned_rows(size: int) -> Any:
    """Select the rows of events in the scan, or of seqs that have no event.

    A row of an event appended during the scan is neither.
    """
    no_event = ~exists().where(audit_events.c.seq == _IDS.seq)
    return or_(_IDS.seq < size, no_event)


def _count_owned(engine: Engine, size: int) -> int:
    query = select(func.count()).select_from(audit_decision_ids)
    with engine.connect() as conn:
        return int(conn.execute(query.where(_owned_rows(size))).scalar_one())


def _underived_rows(engine: Engine, size: int) -> Iterator[DecisionIdRow]:
    """Yield the rows that the event at their seq does not derive, in key order.

    The rows are read a chunk at a time by primary key, and the events at their
    seqs, all verified by the scan, are read with them.
    """
    after: tuple[str, str] | None = None
    while True:
        query = (
            select(_IDS.client_id, _IDS.decision_id, _IDS.seq)
            .where(_owned_rows(size))
            .order_by(_IDS.client_id, _IDS.decision_id)
            .limit(_LOOKUP_CHUNK)
        )
        if after is not None:
            query = query.where(tuple_(_IDS.client_id, _IDS.decision_id) > after)
        with engine.connect() as conn:
            rows = [(row[0], row[1], int(row[2])) for row in conn.execute(query)]
            keys = _derived_keys(conn, [row[2] for row in rows if 0 <= row[2] < size])
        if not rows:
            return
        yield from (row for row in rows if keys.get(row[2]) != row[:2])
        after = rows[-1][:2]


def _derived_keys(conn: Connection, seqs: Iterable[int]) -> dict[int, tuple[str, str]]:
    """Return the (client_id, decision_id) that each event of ``seqs`` derives."""
    query = select(audit_events.c.seq, audit_events.c.canonical).where(
        audit_events.c.seq.in_(sorted(set(seqs)))
    )
    found: dict[int, tuple[str, str]] = {}
    for seq, canonical in conn.execute(query):
        data = json.loads(bytes(canonical))
        key = decision_id_key(data.get("type"), data.get("details") or {})
        if key is not None:
            found[int(seq)] = key
    return found


class DerivedTablesCheck:
    """The checks ``TreeNodeCheck`` and ``DecisionIdCheck`` along one event scan.

    ``batches`` passes the event batches through to the scan and prepares each
    check for the next batch.  ``check`` takes each verified event in seq order.
    """

    def __init__(self, engine: Engine) -> None:
        self._nodes = TreeNodeCheck(engine)
        self._decisions = DecisionIdCheck(engine)
        self._ended = False

    def batches(self, batches: Iterable[Sequence[Any]]) -> Iterator[Sequence[Any]]:
        """Yield ``batches``, reading the stored nodes of each before the scan does."""
        for batch in batches:
            # The scan requests the next batch after it checked every event of
            # this one, so the collected decision ids are complete.
            self._decisions.flush()
            self._nodes.batch(int(batch[-1].seq))
            yield batch
        self._ended = True

    def check(self, seq: int, leaf: bytes, event: AuditEvent) -> None:
        """Check the derived rows of the verified event ``seq``."""
        self._nodes.add(seq, leaf)
        # Only decision events derive a row, and most events are of other types.
        if event.type == "decision":
            self._decisions.add(seq, event)

    def finish(self, size: int) -> list[Problem]:
        """Return the problems of both tables, for a scan of ``size`` events.

        Rows past the scanned events are only read when the scan reached the
        last event.
        """
        return [
            *self._nodes.finish(self._ended),
            *self._decisions.finish(self._ended, size),
        ]
