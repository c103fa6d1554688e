"""Merkle tree hashing, inclusion proofs and consistency proofs (RFC 9162 section 2.1).

This module imports only the standard library and ``agentiam.audit.errors``, so
``agentiam.client`` can verify the server's proofs without the server packages.
Keep server imports out of it.

Proof generation takes ``subtree_root(start, end)``, a function that returns the
Merkle tree hash of the leaves ``start`` to ``end - 1``.  ``LeafHashes`` is the
in-memory version; the audit log supplies one that reads the database.  A proof
needs O(log n) such hashes.

The hash inputs (the 0x00 and 0x01 prefixes and SHA-256) must never change, because
every stored leaf and signed tree head depends on them.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence
from typing import Final

from agentiam.audit.errors import ProofError

HASH_SIZE: Final = 32
_LEAF_PREFIX: Final = b"\x00"
_NODE_PREFIX: Final = b"\x01"

SubtreeRoot = Callable[[int, int], bytes]


def leaf_hash(data: bytes) -> bytes:
    """Return the leaf hash SHA-256(0x00 || data) (RFC 9162 section 2.1.1)."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the interior node hash SHA-256(0x01 || left || right)."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def empty_root() -> bytes:
    """Return the Merkle tree hash of the empty tree, SHA-256 of no bytes."""
    return hashlib.sha256(b"").digest()


def split_point(size: int) -> int:
    """Return the largest power of two smaller than ``size`` (``size`` >= 2)."""
    return 1 << ((size - 1).bit_length() - 1)


def _check_hash(name: str, value: bytes) -> None:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        length = len(value) if isinstance(value, bytes) else "not bytes"
        raise ProofError(
            f"{name} must be a {HASH_SIZE}-byte SHA-256 hash, got {length}."
        )


def root_from_leaf_hashes(leaves: Sequence[bytes]) -> bytes:
    """Return the Merkle tree hash over leaf hashes (not raw leaves)."""
    if not leaves:
        return empty_root()
    level = list(leaves)

    # Pairing from the left and carrying an odd last node up unchanged gives the
    # same tree as the recursive split at the largest power of two.
    while len(level) > 1:
        paired = [
            node_hash(level[index], level[index + 1])
            for index in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


class LeafHashes:
    """Leaf hashes held in memory, with the ``subtree_root`` that proofs use."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        for index, value in enumerate(leaves):
            _check_hash(f"leaf hash {index}", value)
        self.leaves = list(leaves)

    def subtree_root(self, start: int, end: int) -> bytes:
        """Return the Merkle tree hash of ``leaves[start:end]``."""
        return root_from_leaf_hashes(self.leaves[start:end])

    def root(self, size: int | None = None) -> bytes:
        """Return the root of the first ``size`` leaves (all of them by default)."""
        return self.subtree_root(0, len(self.leaves) if size is None else size)


def inclusion_proof(index: int, size: int, subtree_root: SubtreeRoot) -> list[bytes]:
    """Build the audit path PATH(index, D[0:size]) (RFC 9162 section 2.1.3.1).

    Raises:
        ProofError: ``index`` is not below ``size``.
    """
    if not 0 <= index < size:
        raise ProofError(
            f"Leaf index {index} is not in a tree of size {size}; "
            "expected 0 <= index < size."
        )
    return _path(index, 0, size, subtree_root)


def _path(index: int, start: int, end: int, subtree_root: SubtreeRoot) -> list[bytes]:
    """Return the path of the leaf at ``index``, counted from ``start``."""
    size = end - start
    if size == 1:
        return []
    split = split_point(size)
    if index < split:
        left_path = _path(index, start, start + split, subtree_root)
        return [*left_path, subtree_root(start + split, end)]
    right_path = _path(index - split, start + split, end, subtree_root)
    return [*right_path, subtree_root(start, start + split)]


def root_from_inclusion_proof(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes]
) -> bytes:
    """Compute the root that an inclusion proof implies (RFC 9162 section 2.1.3.2).

    Raises:
        ProofError: the index is outside the tree, a hash has the wrong length,
            or the proof has the wrong number of hashes for this index and size.
    """
    result = _inclusion_root(index, size, leaf, proof)
    if result is None:
        raise ProofError(
            f"Inclusion proof has {len(proof)} hashes, the wrong number for "
            f"leaf {index} in a tree of size {size}."
        )
    return result


def _inclusion_root(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes]
) -> bytes | None:
    """Return the implied root, or ``None`` when the proof length is wrong."""
    if not 0 <= index < size:
        raise ProofError(
            f"Leaf index {index} is not in a tree of size {size}; "
            "expected 0 <= index < size."
        )
    _check_hash("leaf hash", leaf)
    for position, value in enumerate(proof):
        _check_hash(f"proof hash {position}", value)

    node_index, last_index = index, size - 1
    result = leaf
    for value in proof:
        if last_index == 0:
            return None
        if node_index & 1 or node_index == last_index:
            result = node_hash(value, result)
            # Skip the levels where this node is a left child with no sibling.
            while not node_index & 1 and node_index != 0:
                node_index >>= 1
                last_index >>= 1
        else:
            result = node_hash(result, value)
        node_index >>= 1
        last_index >>= 1

    if last_index != 0:
        return None
    return result


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> bool:
    """Return whether ``proof`` shows leaf ``index`` is in the tree with ``root``.

    Malformed input (wrong hash lengths, index outside the tree) raises
    ``ProofError``; a well-formed proof that does not match returns ``False``.
    """
    _check_hash("root hash", root)
    computed = _inclusion_root(index, size, leaf, proof)
    return computed is not None and _equal(computed, root)


def consistency_proof(
    first: int, second: int, subtree_root: SubtreeRoot
) -> list[bytes]:
    """Build PROOF(first, D[0:second]) (RFC 9162 section 2.1.4.1).

    Raises:
        ProofError: ``first`` is 0 or greater than ``second``.  A proof from the
            empty tree proves nothing, so it is rejected here.
    """
    _check_sizes(first, second)
    if first == second:
        return []
    return _subproof(first, 0, second, True, subtree_root)


def _subproof(
    first: int, start: int, end: int, whole: bool, subtree_root: SubtreeRoot
) -> list[bytes]:
    size = end - start
    if first == size:
        return [] if whole else [subtree_root(start, end)]
    split = split_point(size)
    if first <= split:
        return [
            *_subproof(first, start, start + split, whole, subtree_root),
            subtree_root(start + split, end),
        ]
    return [
        *_subproof(first - split, start + split, end, False, subtree_root),
        subtree_root(start, start + split),
    ]


def _check_sizes(first: int, second: int) -> None:
    if first <= 0:
        raise ProofError(
            f"Consistency from tree size {first} is not defined; expected >= 1."
        )
    if first > second:
        raise ProofError(
            f"First tree size {first} is larger than second tree size {second}."
        )


def verify_consistency(
    first: int,
    second: int,
    first_root: bytes,
    second_root: bytes,
    proof: Sequence[bytes],
) -> bool:
    """Return whether ``proof`` shows tree ``first`` is a prefix of tree ``second``.

    This is the algorithm of RFC 9162 section 2.1.4.2.  Malformed input (a size of
    0, ``first > second``, hashes of the wrong length) raises ``ProofError``; a
    well-formed proof that does not match returns ``False``.
    """
    _check_sizes(first, second)
    _check_hash("first root hash", first_root)
    _check_hash("second root hash", second_root)
    for position, value in enumerate(proof):
        _check_hash(f"proof hash {position}", value)

    if first == second:
        return not proof and _equal(first_root, second_root)
    if not proof:
        return False

    path = list(proof)
    # When the first tree is a complete subtree its root is the proof's start.
    if first & (first - 1) == 0:
        path.insert(0, first_root)

    node_index, last_index = first - 1, second - 1
    while node_index & 1:
        node_index >>= 1
        last_index >>= 1

    first_result = second_result = path[0]
    for value in path[1:]:
        if last_index == 0:
            return False
        if node_index & 1 or node_index == last_index:
            first_result = node_hash(value, first_result)
            second_result = node_hash(value, second_result)
            while not node_index & 1 and node_index != 0:
                node_index >>= 1
                last_index >>= 1
        else:
            second_result = node_hash(second_result, value)
        node_index >>= 1
        last_index >>= 1

    return (
        last_index == 0
        and _equal(first_result, first_root)
        and _equal(second_result, second_root)
    )


def _equal(left: bytes, right: bytes) -> bool:
    # Roots are public, so timing does not leak a secret here; compare_digest keeps
    # every hash comparison in the project the same.
    return hmac.compare_digest(left, right)


class CompactRange:
    """The roots of the perfect subtrees covering leaves 0 to n - 1.

    Appending is amortized O(1) and ``root()`` is O(log n), so a verifier can
    stream a whole log once and check the root at every signed size on the way.
    """

    def __init__(self) -> None:
        self.size = 0
        self._nodes: list[tuple[int, bytes]] = []

    def append(self, leaf: bytes) -> None:
        """Add the next leaf hash."""
        _check_hash("leaf hash", leaf)
        self._nodes.append((1, leaf))
        self.size += 1

        # Merge equal-sized neighbours: the binary digits of the size give the
        # sizes of the perfect subtrees, largest first.
        while len(self._nodes) >= 2 and self._nodes[-1][0] == self._nodes[-2][0]:
            right_size, right = self._nodes.pop()
            left_size, left = self._nodes.pop()
            self._nodes.append((left_size + right_size, node_hash(left, right)))

    def root(self) -> bytes:
        """Return the Merkle tree hash of the leaves appended so far."""
        if not self._nodes:
            return empty_root()
        result = self._nodes[-1][1]
        for _, value in reversed(self._nodes[:-1]):
            result = node_hash(value, result)
        return result
