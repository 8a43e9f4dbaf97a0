"""``ledger.proof.merkle`` against a brute-force reference: RFC 9162 §2.1
written as literally as possible (recursion over the leaf list), for every
size up to 70 and random larger ones; tampered proofs are refused."""

from __future__ import annotations

import hashlib
import random

import pytest

from ledger.proof import merkle


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def ref_mth(leaves: list[bytes]) -> bytes:
    """MTH(D[n]) over leaf hashes (RFC 9162 §2.1.1)."""
    n = len(leaves)
    if n == 0:
        return _h(b"")
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return _h(b"\x01" + ref_mth(leaves[:k]) + ref_mth(leaves[k:]))


def ref_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) (§2.1.3.1)."""
    n = len(leaves)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*ref_path(m, leaves[:k]), ref_mth(leaves[k:])]
    return [*ref_path(m - k, leaves[k:]), ref_mth(leaves[:k])]


def ref_subproof(m: int, leaves: list[bytes], complete: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) (§2.1.4.1)."""
    n = len(leaves)
    if m == n:
        return [] if complete else [ref_mth(leaves)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*ref_subproof(m, leaves[:k], complete), ref_mth(leaves[k:])]
    return [*ref_subproof(m - k, leaves[k:], False), ref_mth(leaves[:k])]


def leaves_of(count: int, seed: int = 0) -> list[bytes]:
    return [_h(b"\x00" + seed.to_bytes(4, "big") + i.to_bytes(8, "big")) for i in range(count)]


def _flip(value: bytes) -> bytes:
    return bytes([value[0] ^ 1]) + value[1:]


def test_the_empty_tree_and_a_single_leaf() -> None:
    frontier, store = merkle.build([])
    assert frontier.root() == merkle.EMPTY_ROOT == merkle.root(0, store) == _h(b"")
    [leaf] = leaves_of(1)
    frontier, store = merkle.build([leaf])
    assert frontier.root() == leaf == merkle.root(1, store)
    assert merkle.inclusion_proof(0, 1, store) == []
    assert merkle.verify_inclusion(leaf, 0, 1, [], leaf)
    assert not merkle.verify_inclusion(leaf, 0, 1, [leaf], leaf)


@pytest.mark.parametrize("size", range(1, 71))
def test_roots_and_inclusion_proofs_match_the_reference(size: int) -> None:
    leaves = leaves_of(size)
    frontier, store = merkle.build(leaves)
    expected = ref_mth(leaves)
    assert frontier.root() == expected
    for n in range(1, size + 1):  # every prefix, from the same store
        root_n = ref_mth(leaves[:n])
        assert merkle.root(n, store) == root_n
        if n in (size, size // 2 + 1, 1):
            for m in range(n):
                path = merkle.inclusion_proof(m, n, store)
                assert path == ref_path(m, leaves[:n])
                assert merkle.verify_inclusion(leaves[m], m, n, path, root_n)


@pytest.mark.parametrize("size", range(1, 71))
def test_consistency_proofs_match_the_reference(size: int) -> None:
    leaves = leaves_of(size)
    _, store = merkle.build(leaves)
    new_root = ref_mth(leaves)
    for m in range(0, size + 1):
        path = merkle.consistency_proof(m, size, store)
        expected = [] if m in (0, size) else ref_subproof(m, leaves, True)
        assert path == expected
        assert merkle.verify_consistency(m, size, ref_mth(leaves[:m]), new_root, path)


def test_random_large_trees() -> None:
    rng = random.Random(16)
    for _ in range(6):
        size = rng.randrange(1_000, 5_000)
        leaves = leaves_of(size, seed=size)
        frontier, store = merkle.build(leaves)
        assert frontier.root() == ref_mth(leaves)
        for _ in range(20):
            n = rng.randrange(1, size + 1)
            m = rng.randrange(0, n)
            root_n = merkle.root(n, store)
            path = merkle.inclusion_proof(m, n, store)
            assert path == ref_path(m, leaves[:n])
            assert merkle.verify_inclusion(leaves[m], m, n, path, root_n)
            old = rng.randrange(0, n + 1)
            consistency = merkle.consistency_proof(old, n, store)
            assert merkle.verify_consistency(old, n, merkle.root(old, store), root_n, consistency)


def test_a_proof_reads_few_nodes_in_one_call() -> None:
    """O(log n) stored nodes, fetched at once, whatever the tree's size."""
    calls: list[int] = []
    leaves = leaves_of(3_000)
    _, store = merkle.build(leaves)

    class Counting:
        def get_nodes(self, keys):  # type: ignore[no-untyped-def]
            calls.append(len(keys))
            return store.get_nodes(keys)

    merkle.inclusion_proof(1234, 2999, Counting())
    merkle.consistency_proof(1000, 2999, Counting())
    assert len(calls) == 2 and max(calls) <= 2 * 12
    ranges = merkle.inclusion_ranges(123_456, 1_000_003)
    assert len(merkle.keys_of(ranges)) <= 2 * 20


@pytest.mark.parametrize("size", [2, 3, 5, 8, 13, 33, 64, 70])
def test_tampered_inclusion_proofs_are_refused(size: int) -> None:
    leaves = leaves_of(size)
    _, store = merkle.build(leaves)
    root = merkle.root(size, store)
    for m in range(size):
        path = merkle.inclusion_proof(m, size, store)
        assert merkle.verify_inclusion(leaves[m], m, size, path, root)
        assert not merkle.verify_inclusion(_flip(leaves[m]), m, size, path, root)  # another event
        assert not merkle.verify_inclusion(leaves[m], m, size, path, _flip(root))  # another root
        other = (m + 1) % size
        assert not merkle.verify_inclusion(leaves[m], other, size, path, root)  # another index
        assert not merkle.verify_inclusion(leaves[m], m, size, [*path, path[0]] if path else [root], root)
        if path:
            assert not merkle.verify_inclusion(leaves[m], m, size, path[:-1], root)  # shortened
            for i in range(len(path)):
                bad = list(path)
                bad[i] = _flip(bad[i])
                assert not merkle.verify_inclusion(leaves[m], m, size, bad, root)
    assert not merkle.verify_inclusion(leaves[0], size, size, [], root)  # out of range


@pytest.mark.parametrize("size", [2, 3, 5, 8, 13, 33, 64, 70])
def test_tampered_consistency_proofs_are_refused(size: int) -> None:
    leaves = leaves_of(size)
    _, store = merkle.build(leaves)
    new_root = merkle.root(size, store)
    for m in range(1, size):
        old_root = merkle.root(m, store)
        path = merkle.consistency_proof(m, size, store)
        assert merkle.verify_consistency(m, size, old_root, new_root, path)
        assert not merkle.verify_consistency(m, size, _flip(old_root), new_root, path)
        assert not merkle.verify_consistency(m, size, old_root, _flip(new_root), path)
        assert not merkle.verify_consistency(m, size, old_root, new_root, [])
        assert not merkle.verify_consistency(m, size, old_root, new_root, path[:-1])
        assert not merkle.verify_consistency(m, size, old_root, new_root, [*path, path[-1]])
        for i in range(len(path)):
            bad = list(path)
            bad[i] = _flip(bad[i])
            assert not merkle.verify_consistency(m, size, old_root, new_root, bad)
    # a forked history (its last old leaf differs) is not a prefix
    forked = [*leaves[: size - 2], _flip(leaves[size - 2]), leaves[size - 1]]
    _, fork_store = merkle.build(forked)
    m = size - 1
    path = merkle.consistency_proof(m, size, store)
    assert not merkle.verify_consistency(m, size, merkle.root(m, fork_store), new_root, path)
    assert merkle.verify_consistency(size, size, new_root, new_root, [])
    assert not merkle.verify_consistency(size, size, new_root, _flip(new_root), [])
    assert not merkle.verify_consistency(size, size - 1, new_root, new_root, [])


def test_the_frontier_reloads_from_the_store() -> None:
    leaves = leaves_of(1_001)
    whole, store = merkle.build(leaves)
    for size in (0, 1, 2, 7, 512, 1_000):
        frontier = merkle.Frontier.load(size, store)
        assert frontier.root() == ref_mth(leaves[:size])
        for leaf in leaves[size:]:
            frontier.append(leaf)
        assert frontier.root() == whole.root()
    with pytest.raises(merkle.MissingNode):
        merkle.Frontier.load(1_002, store)
    with pytest.raises(merkle.MissingNode):
        merkle.inclusion_proof(0, 1_002, store)


def test_ranges_that_are_no_subtree_are_refused() -> None:
    with pytest.raises(ValueError):
        merkle.perfect_keys(1, 4)  # sizes 1, 2: not decreasing
    with pytest.raises(ValueError):
        merkle.inclusion_ranges(5, 5)
    with pytest.raises(ValueError):
        merkle.consistency_ranges(6, 5)
