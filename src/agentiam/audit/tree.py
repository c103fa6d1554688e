"""Merkle subtree hashes over the stored leaf hashes, with a cache for proofs.

A proof needs O(log n) subtree roots.  Every subtree used is either a perfect,
aligned subtree (``2**k`` leaves starting at a multiple of ``2**k``) or splits into
O(log n) of them.  Perfect subtrees never change once their leaves exist, because
the log is append-only, so those of more than ``2**cache_level`` leaves are
cached.  A smaller one is computed from at most ``2**cache_level`` leaf hashes,
read in one range query.  Once the cache is warm a proof or a root costs O(log n) cache
lookups and O(log n) range reads of at most 256 leaves (with the default level 8).
The first computation of a large subtree reads each of its leaves once, so the
first root of a log of n events reads n leaf hashes.  The cache contains about
``n / 2**cache_level`` hashes: 3,900 entries for a million events.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from agentiam.audit.errors import AuditError
from agentiam.audit.merkle import (
    empty_root,
    node_hash,
    root_from_leaf_hashes,
    split_point,
)

LeafLoader = Callable[[int, int], Sequence[bytes]]

DEFAULT_CACHE_LEVEL = 8


class SubtreeHashes:
    """Compute ``subtree_root(start, end)`` from leaf hashes loaded on demand."""

    def __init__(
        self, load_leaves: LeafLoader, *, cache_level: int = DEFAULT_CACHE_LEVEL
    ) -> None:
        self._load_leaves = load_leaves
        self._cache_level = cache_level
        self._cache: dict[tuple[int, int], bytes] = {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        """Drop every cached hash, e.g. after the table was changed outside the log."""
        with self._lock:
            self._cache.clear()

    def subtree_root(self, start: int, end: int) -> bytes:
        """Return the Merkle tree hash of the leaves ``start`` to ``end - 1``.

        The caller must ask only for leaves that are committed, because perfect
        subtrees are cached for the life of this object.
        """
        size = end - start
        if size <= 0:
            return empty_root()
        if size & (size - 1) == 0 and start % size == 0:
            return self._perfect(start, size.bit_length() - 1)

        split = split_point(size)
        left = self.subtree_root(start, start + split)
        return node_hash(left, self.subtree_root(start + split, end))

    def _perfect(self, start: int, level: int) -> bytes:
        size = 1 << level
        if level <= self._cache_level:
            return root_from_leaf_hashes(self._read(start, start + size))

        key = (level, start >> level)
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None:
            return cached

        half = size >> 1
        value = node_hash(
            self._perfect(start, level - 1), self._perfect(start + half, level - 1)
        )
        with self._lock:
            self._cache[key] = value
        return value

    def _read(self, start: int, end: int) -> Sequence[bytes]:
        leaves = self._load_leaves(start, end)
        if len(leaves) != end - start:
            raise AuditError(
                f"Audit log leaves {start} to {end - 1} are incomplete: "
                f"found {len(leaves)} of {end - start}; run 'agentiam audit verify'."
            )
        return leaves
