"""Merkle subtree hashes over the stored log, held in memory for O(log n) proofs.

The table ``audit_tree_nodes`` stores the hash of every complete, aligned subtree
of ``2**level`` leaves with ``level >= NODE_LEVEL``, keyed by ``(level, index)``
where the subtree covers leaves ``index * 2**level`` to ``(index + 1) * 2**level -
1``.  Such a subtree never changes once its last leaf exists, because the log is
append-only.  ``write_nodes`` adds the new nodes inside the unit of work that
appends the leaf completing them, so the nodes commit or roll back with the event.

``SubtreeHashes`` keeps a copy of the table in memory.  ``AuditLog`` loads it in
one query when it opens the log and adds the nodes a batch wrote only after that
batch has committed, so a rolled-back batch leaves nothing behind.  A node that
is not in memory (written by another process, or by ``record_in`` in a caller's
unit of work) is read from the table when a proof needs it.  It also keeps the
leaf hashes of the last ``RECENT_LEAVES`` committed events of the batches it was
given (2 MB), so proofs of recent events and the partial block at the tree's
right edge need no query.

Cost, with ``NODE_LEVEL = 6`` and n events:

- memory and storage: ``n/64 + n/128 + ... < n/32`` hashes of 32 bytes, so about
  31,000 hashes or 1 MB for a million events (one ``bytearray`` per level);
- append: a batch computes the nodes its leaves complete from its own leaf
  hashes; it reads stored leaves only for the part of a block written before the
  batch (one query), and a left sibling node only when it is neither in the batch
  nor in memory;
- proof or root of a tree of size n: O(log n) hash lookups in memory, plus the
  leaf hashes below ``NODE_LEVEL``: the proven leaf's block (63 leaves) and the
  partial block at the tree's right edge (up to 63 more), from the recent leaves
  in memory or else one range query each.

The hashing is RFC 9162 section 2.1 (see ``merkle``); the nodes only cache it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, func, not_, or_, select, tuple_
from sqlalchemy.engine import Connection

from agentiam.audit.errors import AuditError
from agentiam.audit.merkle import (
    SubtreeRoot,
    empty_root,
    node_hash,
    root_from_leaf_hashes,
    split_point,
)
from agentiam.audit.tables import audit_tree_nodes

# Returns the leaf hashes of every seq in the given ``(start, end)`` spans.
LeafLoader = Callable[[Sequence[tuple[int, int]]], Mapping[int, bytes]]
NodeLoader = Callable[[Sequence[tuple[int, int]]], Mapping[tuple[int, int], bytes]]
# A node as ``(level, index, hash)``.
Node = tuple[int, int, bytes]

# The lowest stored level: subtrees of 64 leaves and larger.  After a change the
# table no longer matches, and ``AuditLog`` rebuilds it when it opens the log.
NODE_LEVEL = 6
# How many of the latest committed leaf hashes ``SubtreeHashes`` keeps (2 MB).
RECENT_LEAVES = 1 << 16
_HASH = 32
_PLACEHOLDER = bytes(_HASH)


def perfect_pieces(start: int, end: int) -> list[tuple[int, int]]:
    """Split leaves ``start`` to ``end - 1`` into aligned perfect subtrees.

    Returns ``(level, start)`` pairs in the order the RFC 9162 recursion visits
    them: the recursion splits at the largest power of two below the size, so
    every piece it reaches is a perfect subtree aligned to its own size.
    """
    pieces: list[tuple[int, int]] = []
    pending = [(start, end)]
    while pending:
        low, high = pending.pop()
        size = high - low
        if size <= 0:
            continue
        if size & (size - 1) == 0 and low % size == 0:
            pieces.append((size.bit_length() - 1, low))
            continue
        split = split_point(size)
        pending.append((low + split, high))
        pending.append((low, low + split))
    return pieces


def collect_ranges(build: Callable[[SubtreeRoot], object]) -> list[tuple[int, int]]:
    """Run a proof builder with placeholder hashes; return the ranges it requested.

    The proof algorithms choose their subtrees from the sizes alone, so a dry run
    finds every range that the real run needs, and they can be loaded at once.
    """
    ranges: list[tuple[int, int]] = []

    def record(start: int, end: int) -> bytes:
        ranges.append((start, end))
        return _PLACEHOLDER

    build(record)
    return ranges


class SubtreeHashes:
    """Subtree roots from the nodes held in memory and leaf hashes (see the module doc).

    Args:
        load_leaves: returns the leaf hashes of the requested spans of seqs.
        load_nodes: returns the stored hashes of the requested ``(level, index)``
            nodes; absent ones are left out.
    """

    def __init__(self, load_leaves: LeafLoader, load_nodes: NodeLoader) -> None:
        self._load_leaves = load_leaves
        self._load_nodes = load_nodes
        # _levels[level - NODE_LEVEL] contains the hashes of indexes 0, 1, 2, ... of
        # that level back to back.  Nodes that arrive before a lower index of
        # their level wait in _pending.
        self._levels: list[bytearray] = []
        self._pending: dict[tuple[int, int], bytes] = {}
        # The leaf hashes of seqs _recent_start, _recent_start + 1, ... back to
        # back: one run of committed leaves, restarted when a batch leaves a gap.
        self._recent_start = 0
        self._recent = bytearray()
        self._lock = threading.Lock()

    def reset(self, nodes: Iterable[Node]) -> None:
        """Replace every node in memory with ``nodes`` (committed rows only)."""
        with self._lock:
            self._levels = []
            self._pending = {}
            self._recent_start = 0
            self._recent = bytearray()
        self.add(nodes)

    def add_leaves(self, first: int, leaves: Sequence[bytes]) -> None:
        """Keep the committed leaf hashes of seqs ``first`` onwards as recent leaves."""
        if not leaves:
            return
        with self._lock:
            end = self._recent_start + len(self._recent) // _HASH
            if first > end or first < self._recent_start:
                self._recent_start, self._recent = first, bytearray()
                end = first
            skip = end - first
            if skip < len(leaves):
                self._recent += b"".join(leaves[skip:])
            # Trim whole blocks from the front once the run is a block too long.
            extra = len(self._recent) // _HASH - RECENT_LEAVES
            if extra >= 1 << NODE_LEVEL:
                del self._recent[: extra * _HASH]
                self._recent_start += extra

    def get(self, level: int, index: int) -> bytes | None:
        """Return the node at ``(level, index)`` if it is in memory."""
        with self._lock:
            return self._get(level, index)

    def add(self, nodes: Iterable[Node]) -> None:
        """Add committed nodes; a node already present is left as it is."""
        if not nodes:
            return
        with self._lock:
            for level, index, value in nodes:
                if self._get(level, index) is None:
                    self._pending[(level, index)] = value
            self._drain()

    def _drain(self) -> None:
        for key in sorted(self._pending):
            level, index = key
            row = level - NODE_LEVEL
            while len(self._levels) <= row:
                self._levels.append(bytearray())
            if len(self._levels[row]) == index * _HASH:
                self._levels[row] += self._pending.pop(key)
            elif len(self._levels[row]) > index * _HASH:
                del self._pending[key]

    def _get(self, level: int, index: int) -> bytes | None:
        row = level - NODE_LEVEL
        if row < len(self._levels):
            offset = index * _HASH
            if offset < len(self._levels[row]):
                return bytes(self._levels[row][offset : offset + _HASH])
        return self._pending.get((level, index))

    def nodes(self) -> dict[tuple[int, int], bytes]:
        """Return a copy of every node in memory, keyed by ``(level, index)``."""
        with self._lock:
            found = dict(self._pending)
            for row, hashes in enumerate(self._levels):
                for index in range(len(hashes) // _HASH):
                    found[(row + NODE_LEVEL, index)] = bytes(
                        hashes[index * _HASH : (index + 1) * _HASH]
                    )
        return found

    def subtree_root(self, start: int, end: int) -> bytes:
        """Return the Merkle tree hash of committed leaves ``start`` to ``end - 1``."""
        return self.resolver([(start, end)])(start, end)

    def resolver(self, ranges: Iterable[tuple[int, int]]) -> SubtreeRoot:
        """Load what ``ranges`` need in at most two queries; return ``subtree_root``.

        The nodes come from memory, so the usual cost is one query for the leaf
        hashes below ``NODE_LEVEL``.  The returned function computes only the
        ranges given here (and any range made of the same pieces); it raises
        ``AuditError`` for others.
        """
        keys: list[tuple[int, int]] = []
        leaf_spans: list[tuple[int, int]] = []
        for start, end in ranges:
            for level, low in perfect_pieces(start, end):
                if level >= NODE_LEVEL:
                    keys.append((level, low >> level))
                else:
                    leaf_spans.append((low, low + (1 << level)))

        known = self._nodes(keys)
        leaves = self._leaves(leaf_spans)
        return lambda start, end: _combine(start, end, known, leaves)

    def _nodes(self, keys: list[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        found: dict[tuple[int, int], bytes] = {}
        missing: list[tuple[int, int]] = []
        with self._lock:
            for key in keys:
                value = self._get(*key)
                if value is None:
                    missing.append(key)
                else:
                    found[key] = value
        if not missing:
            return found

        # A read connection returns only committed rows, so they may join memory.
        loaded = dict(self._load_nodes(sorted(set(missing))))
        for level, index in missing:
            if (level, index) not in loaded:
                raise AuditError(
                    f"Audit tree node at level {level}, index {index} is missing; "
                    "run 'agentiam audit verify'."
                )
        self.add((level, index, value) for (level, index), value in loaded.items())
        found.update(loaded)
        return found

    def _recent_leaves(self, start: int, end: int) -> dict[int, bytes] | None:
        with self._lock:
            low = start - self._recent_start
            if low < 0 or (end - self._recent_start) * _HASH > len(self._recent):
                return None
            data = bytes(self._recent[low * _HASH : (low + end - start) * _HASH])
        return {
            start + i: data[i * _HASH : (i + 1) * _HASH] for i in range(end - start)
        }

    def _leaves(self, spans: list[tuple[int, int]]) -> Mapping[int, bytes]:
        if not spans:
            return {}
        merged = _merge(spans)
        leaves: dict[int, bytes] = {}
        stored: list[tuple[int, int]] = []
        for start, end in merged:
            recent = self._recent_leaves(start, end)
            if recent is None:
                stored.append((start, end))
            else:
                leaves.update(recent)
        if stored:
            leaves.update(self._load_leaves(stored))
        for start, end in merged:
            found = sum(1 for seq in range(start, end) if seq in leaves)
            if found != end - start:
                raise AuditError(
                    f"Audit log leaves {start} to {end - 1} are incomplete: "
                    f"found {found} of {end - start}; "
                    "run 'agentiam audit verify'."
                )
        return leaves


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Merge leaf ranges less than a block apart, so each is read once.

    The leaves of a proof's own block lie on both sides of the proven leaf, so
    reading the few leaves in a gap costs less than a second query.
    """
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1] + (1 << NODE_LEVEL):
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _combine(
    start: int,
    end: int,
    nodes: Mapping[tuple[int, int], bytes],
    leaves: Mapping[int, bytes],
) -> bytes:
    """Compute one subtree root from loaded nodes and leaves, as RFC 9162 splits it."""
    size = end - start
    if size <= 0:
        return empty_root()
    if size & (size - 1) == 0 and start % size == 0:
        return _piece(size.bit_length() - 1, start, nodes, leaves)

    split = split_point(size)
    left = _combine(start, start + split, nodes, leaves)
    return node_hash(left, _combine(start + split, end, nodes, leaves))


def _piece(
    level: int,
    low: int,
    nodes: Mapping[tuple[int, int], bytes],
    leaves: Mapping[int, bytes],
) -> bytes:
    try:
        if level >= NODE_LEVEL:
            return nodes[(level, low >> level)]
        return root_from_leaf_hashes(
            [leaves[i] for i in range(low, low + (1 << level))]
        )
    except KeyError as err:
        raise AuditError(
            f"Subtree of level {level} at leaf {low} was not loaded."
        ) from err


# Reads the stored leaf hashes of seqs ``start`` to ``end - 1``, in order.
StoredLeaves = Callable[[int, int], Sequence[bytes]]
# Reads one stored node, or returns None.
StoredNode = Callable[[int, int], bytes | None]


def batch_nodes(
    first: int,
    leaves: Sequence[bytes],
    *,
    stored_leaves: StoredLeaves,
    stored_node: StoredNode,
) -> list[Node]:
    """Return the nodes completed by appending ``leaves`` at seqs ``first`` onwards.

    Runs in the appending unit of work, which stores the nodes returned, so they
    share its transaction.  The batch's own leaf hashes and nodes are used
    directly.  ``stored_leaves`` is called only for the part of a block that
    precedes the batch, and ``stored_node`` only for a left sibling made before it.

    Raises:
        AuditError: a stored leaf or node that the new nodes need is missing.
    """
    block = 1 << NODE_LEVEL
    end = first + len(leaves)
    made: dict[tuple[int, int], bytes] = {}
    nodes: list[Node] = []
    for size in range((first // block + 1) * block, end + 1, block):
        start = size - block
        if start >= first:
            block_leaves = leaves[start - first : size - first]
        else:
            before = stored_leaves(start, first)
            if len(before) != first - start:
                raise AuditError(
                    f"Audit log leaves {start} to {first - 1} are incomplete: "
                    f"found {len(before)} of {first - start}."
                )
            block_leaves = [*before, *leaves[: size - first]]

        level, value = NODE_LEVEL, root_from_leaf_hashes(block_leaves)
        while True:
            key = (level, (size >> level) - 1)
            made[key] = value
            nodes.append((*key, value))
            level += 1
            if size % (1 << level):
                break
            left_key = (level - 1, (size >> (level - 1)) - 2)
            left = made.get(left_key) or stored_node(*left_key)
            if left is None:
                raise AuditError(
                    f"Audit tree node at level {left_key[0]}, index {left_key[1]} "
                    "is missing; run 'agentiam audit verify'."
                )
            value = node_hash(left, value)
    return nodes


def nodes_for_leaves(leaves: Iterable[bytes]) -> Iterable[dict[str, Any]]:
    """Yield the node rows of a whole log given its leaf hashes in order.

    Used to rebuild the table and to write logs in bulk; memory is O(log n).
    """
    stack: list[tuple[int, bytes]] = []
    block: list[bytes] = []
    size = 0
    for leaf in leaves:
        block.append(leaf)
        size += 1
        if len(block) < 1 << NODE_LEVEL:
            continue
        value, level = root_from_leaf_hashes(block), NODE_LEVEL
        block = []
        yield {"level": level, "idx": (size >> level) - 1, "hash": value}
        while stack and stack[-1][0] == level:
            _, left = stack.pop()
            value, level = node_hash(left, value), level + 1
            yield {"level": level, "idx": (size >> level) - 1, "hash": value}
        stack.append((level, value))


def malformed_node_rows(dialect: str) -> ColumnElement[bool]:
    """Return the condition that selects rows of ``audit_tree_nodes`` no node has.

    A node has an integer level of at least ``NODE_LEVEL``, an integer idx of at
    least 0 and a hash of 32 bytes.  PostgreSQL's column types keep the types,
    but SQLite stores a value of any type in any column, so there the types are
    checked too.  Only a row written by hand fails the condition.
    """
    nodes = audit_tree_nodes.c
    conditions = [nodes.level < NODE_LEVEL, nodes.idx < 0]
    if dialect == "sqlite":
        conditions += [
            func.typeof(nodes.level) != "integer",
            func.typeof(nodes.idx) != "integer",
            func.typeof(nodes.hash) != "blob",
        ]
    conditions.append(func.length(nodes.hash) != _HASH)
    return or_(*conditions)


def load_nodes_in(
    conn: Connection, keys: Sequence[tuple[int, int]]
) -> dict[tuple[int, int], bytes]:
    """Read the stored hashes of ``keys`` in one query, leaving out malformed rows."""
    nodes = audit_tree_nodes.c
    rows = conn.execute(
        select(nodes.level, nodes.idx, nodes.hash).where(
            tuple_(nodes.level, nodes.idx).in_(keys),
            not_(malformed_node_rows(conn.dialect.name)),
        )
    ).all()
    return {(int(row.level), int(row.idx)): bytes(row.hash) for row in rows}


def load_all_nodes(conn: Connection) -> tuple[list[Node], int]:
    """Read every well-formed stored node, in ``(level, index)`` order.

    Returns the nodes and the number of malformed rows left out (see
    ``malformed_node_rows``).
    """
    nodes = audit_tree_nodes.c
    malformed = malformed_node_rows(conn.dialect.name)
    rows = conn.execute(
        select(nodes.level, nodes.idx, nodes.hash)
        .where(not_(malformed))
        .order_by(nodes.level, nodes.idx)
    ).all()
    left_out = conn.execute(
        select(func.count()).select_from(audit_tree_nodes).where(malformed)
    ).scalar_one()
    return [(int(row[0]), int(row[1]), bytes(row[2])) for row in rows], int(left_out)
