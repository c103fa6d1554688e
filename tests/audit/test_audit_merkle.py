"""RFC 9162 Merkle tree: reference vectors, proofs and tampered proofs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentiam.audit.errors import ProofError, TreeHeadError
from agentiam.audit.events import AuditEvent
from agentiam.audit.merkle import (
    CompactRange,
    LeafHashes,
    consistency_proof,
    empty_root,
    inclusion_proof,
    leaf_hash,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)
from agentiam.audit.tree_head import sign_tree_head, verify_tree_head
from agentiam.jose import SigningKey, VerificationKey

VECTORS = json.loads(
    (Path(__file__).parents[1] / "vectors" / "rfc6962_merkle_tree.json").read_text(
        encoding="utf-8"
    )
)
TREE = LeafHashes([leaf_hash(bytes.fromhex(leaf)) for leaf in VECTORS["leaves"]])


def test_empty_root_vector() -> None:
    assert empty_root().hex() == VECTORS["empty_root"]
    assert LeafHashes([]).root().hex() == VECTORS["empty_root"]


@pytest.mark.parametrize(
    "case", VECTORS["roots"], ids=[f"size-{c['tree_size']}" for c in VECTORS["roots"]]
)
def test_root_vectors(case: dict[str, object]) -> None:
    assert TREE.root(case["tree_size"]).hex() == case["root"]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "case",
    VECTORS["inclusion_proofs"],
    ids=[f"{c['leaf_index']}-in-{c['tree_size']}" for c in VECTORS["inclusion_proofs"]],
)
def test_inclusion_vectors(case: dict[str, object]) -> None:
    index, size = case["leaf_index"], case["tree_size"]
    proof = inclusion_proof(index, size, TREE.subtree_root)  # type: ignore[arg-type]
    assert [value.hex() for value in proof] == case["path"]
    root = TREE.root(size)  # type: ignore[arg-type]
    leaf = TREE.leaves[index]  # type: ignore[index]
    assert verify_inclusion(index, size, leaf, proof, root)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "case",
    VECTORS["consistency_proofs"],
    ids=[f"{c['first']}-to-{c['second']}" for c in VECTORS["consistency_proofs"]],
)
def test_consistency_vectors(case: dict[str, object]) -> None:
    first, second = case["first"], case["second"]
    proof = consistency_proof(first, second, TREE.subtree_root)  # type: ignore[arg-type]
    assert [value.hex() for value in proof] == case["path"]
    assert verify_consistency(
        first,  # type: ignore[arg-type]
        second,  # type: ignore[arg-type]
        TREE.root(first),  # type: ignore[arg-type]
        TREE.root(second),  # type: ignore[arg-type]
        proof,
    )


def test_every_small_proof_verifies() -> None:
    for size in range(1, 9):
        root = TREE.root(size)
        for index in range(size):
            proof = inclusion_proof(index, size, TREE.subtree_root)
            assert verify_inclusion(index, size, TREE.leaves[index], proof, root)
        for first in range(1, size + 1):
            proof = consistency_proof(first, size, TREE.subtree_root)
            assert verify_consistency(first, size, TREE.root(first), root, proof)


def _flip(value: bytes, bit: int) -> bytes:
    data = bytearray(value)
    data[bit // 8] ^= 1 << (bit % 8)
    return bytes(data)


def _tree(count: int) -> LeafHashes:
    return LeafHashes([leaf_hash(i.to_bytes(4, "big")) for i in range(count)])


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_inclusion_property(data: st.DataObject) -> None:
    size = data.draw(st.integers(min_value=1, max_value=300), label="size")
    index = data.draw(st.integers(min_value=0, max_value=size - 1), label="index")
    tree = _tree(size)
    root = tree.root()
    leaf = tree.leaves[index]
    proof = inclusion_proof(index, size, tree.subtree_root)
    assert verify_inclusion(index, size, leaf, proof, root)

    bit = data.draw(st.integers(min_value=0, max_value=255), label="bit")
    assert not verify_inclusion(index, size, _flip(leaf, bit), proof, root)
    assert not verify_inclusion(index, size, leaf, proof, _flip(root, bit))
    if proof:
        position = data.draw(st.integers(0, len(proof) - 1), label="position")
        changed = list(proof)
        changed[position] = _flip(changed[position], bit)
        assert not verify_inclusion(index, size, leaf, changed, root)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_consistency_property(data: st.DataObject) -> None:
    second = data.draw(st.integers(min_value=1, max_value=300), label="second")
    first = data.draw(st.integers(min_value=1, max_value=second), label="first")
    tree = _tree(second)
    first_root, second_root = tree.root(first), tree.root(second)
    proof = consistency_proof(first, second, tree.subtree_root)
    assert verify_consistency(first, second, first_root, second_root, proof)

    bit = data.draw(st.integers(min_value=0, max_value=255), label="bit")
    assert not verify_consistency(
        first, second, _flip(first_root, bit), second_root, proof
    )
    assert not verify_consistency(
        first, second, first_root, _flip(second_root, bit), proof
    )
    if proof:
        position = data.draw(st.integers(0, len(proof) - 1), label="position")
        changed = list(proof)
        changed[position] = _flip(changed[position], bit)
        assert not verify_consistency(first, second, first_root, second_root, changed)


@given(st.integers(min_value=0, max_value=300))
def test_compact_range_matches_root(size: int) -> None:
    tree = _tree(size)
    compact = CompactRange()
    for leaf in tree.leaves:
        compact.append(leaf)
    assert compact.size == size
    assert compact.root() == tree.root()


def test_inclusion_rejects_wrong_hash_length() -> None:
    proof = inclusion_proof(0, 8, TREE.subtree_root)
    root = TREE.root(8)
    with pytest.raises(ProofError, match="leaf hash must be a 32-byte"):
        verify_inclusion(0, 8, TREE.leaves[0][:31], proof, root)
    with pytest.raises(ProofError, match="proof hash 1 must be a 32-byte"):
        verify_inclusion(0, 8, TREE.leaves[0], [proof[0], proof[1] + b"x"], root)
    with pytest.raises(ProofError, match="root hash must be a 32-byte"):
        verify_inclusion(0, 8, TREE.leaves[0], proof, root[:16])


def test_inclusion_rejects_wrong_proof_length() -> None:
    proof = inclusion_proof(5, 8, TREE.subtree_root)
    root = TREE.root(8)
    assert not verify_inclusion(5, 8, TREE.leaves[5], proof[:-1], root)
    assert not verify_inclusion(5, 8, TREE.leaves[5], [*proof, proof[0]], root)
    with pytest.raises(ProofError, match="wrong number"):
        root_from_inclusion_proof(5, 8, TREE.leaves[5], proof[:-1])


@pytest.mark.parametrize(
    ("index", "size"), [(8, 8), (-1, 8), (0, 0)], ids=["past-end", "negative", "empty"]
)
def test_inclusion_rejects_index_outside_tree(index: int, size: int) -> None:
    with pytest.raises(ProofError, match="is not in a tree of size"):
        inclusion_proof(index, size, TREE.subtree_root)
    with pytest.raises(ProofError, match="is not in a tree of size"):
        verify_inclusion(index, size, TREE.leaves[0], [], TREE.root(8))


def test_consistency_rejects_size_zero() -> None:
    with pytest.raises(ProofError, match="from tree size 0 is not defined"):
        consistency_proof(0, 8, TREE.subtree_root)
    with pytest.raises(ProofError, match="from tree size 0 is not defined"):
        verify_consistency(0, 8, empty_root(), TREE.root(8), [])


def test_consistency_rejects_first_larger() -> None:
    with pytest.raises(ProofError, match="First tree size 8 is larger than"):
        consistency_proof(8, 3, TREE.subtree_root)


def test_consistency_rejects_wrong_hash_length() -> None:
    proof = consistency_proof(3, 8, TREE.subtree_root)
    with pytest.raises(ProofError, match="first root hash must be a 32-byte"):
        verify_consistency(3, 8, b"short", TREE.root(8), proof)
    with pytest.raises(ProofError, match="proof hash 0 must be a 32-byte"):
        verify_consistency(3, 8, TREE.root(3), TREE.root(8), [b"", *proof[1:]])


def test_consistency_rejects_empty_and_extra_proofs() -> None:
    proof = consistency_proof(3, 8, TREE.subtree_root)
    assert not verify_consistency(3, 8, TREE.root(3), TREE.root(8), [])
    assert not verify_consistency(3, 8, TREE.root(3), TREE.root(8), [*proof, proof[0]])
    assert not verify_consistency(3, 3, TREE.root(3), TREE.root(3), proof)
    assert not verify_consistency(3, 3, TREE.root(3), TREE.root(4), [])


_EVENT = AuditEvent("decision", "deny", "refused", human="alice", time=1.5)
_EVENT_TREE = LeafHashes(
    [leaf_hash(_EVENT.canonical()), *(leaf_hash(bytes([n])) for n in range(6))]
)
_HEAD_KEY = SigningKey.generate("ES256")
_HEAD = sign_tree_head(7, _EVENT_TREE.root(), 1.5, _HEAD_KEY, issuer="http://x")


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=8 * len(_EVENT.canonical()) - 1))
def test_inclusion_fails_for_event_bit_flip(bit: int) -> None:
    proof = inclusion_proof(0, 7, _EVENT_TREE.subtree_root)
    changed = leaf_hash(_flip(_EVENT.canonical(), bit))
    assert not verify_inclusion(0, 7, changed, proof, _EVENT_TREE.root())


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=8 * len(_HEAD.signature) - 1))
def test_tree_head_fails_for_signature_bit_flip(bit: int) -> None:
    changed = _flip(_HEAD.signature.encode("ascii"), bit).decode("latin-1")
    keys = {_HEAD_KEY.kid: VerificationKey.from_jwk(_HEAD_KEY.public_jwk())}
    with pytest.raises(TreeHeadError):
        verify_tree_head(changed, keys.get, issuer="http://x")
