"""RFC 9162 Merkle tree over the event log: tree hashes, inclusion and
consistency proofs, and their verifiers (§2.1), as pure functions over a
store of *perfect aligned subtrees*.

The store: when leaf ``i`` is appended, node ``(0, i)`` is stored, and while
the new node is a right child its parent is computed and stored too (a binary
counter's carries).  Node ``(level, idx)`` is then the hash of the complete
subtree of ``2**level`` leaves starting at leaf ``idx << level``; it never
changes once written.  Any RFC 9162 subtree ``MTH(D[start:end])`` that the
tree, an inclusion or a consistency proof needs splits into at most ~log2(n)
such nodes (the binary decomposition of its size), so a proof over a
1M-event log reads ~40 stored nodes in one query whatever the log's size, and
the hashing is O(log n).  :class:`Frontier` is the appender: it keeps only the
right edge (one node per set bit of the size).

Verification follows RFC 9162 §2.1.3.2 (inclusion) and §2.1.4.2
(consistency) step by step, so an auditor can compare it with the RFC and with
``examples/verify_ledger.py`` (the same algorithms, written independently of
this package).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Protocol

#: (level, index): the perfect subtree of 2**level leaves starting at leaf index << level.
Key = tuple[int, int]

EMPTY_ROOT = hashlib.sha256(b"").digest()  #: RFC 9162: the hash of an empty tree
_sha256 = hashlib.sha256


class MissingNode(LookupError):
    """The store lacks a node a computation needs (the tree is not that big yet)."""


class NodeStore(Protocol):
    """Where perfect subtree hashes are read from.

    ``get_nodes`` returns the hash of every requested key that exists and is
    free to leave out the others (callers raise :class:`MissingNode`).  It is
    called once per tree, proof or root computation, with at most ~2·log2(n)
    keys, so a database implementation answers it with one query."""

    def get_nodes(self, keys: Collection[Key]) -> Mapping[Key, bytes]: ...


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right).digest()


def split_point(size: int) -> int:
    """RFC 9162's k: the largest power of two smaller than ``size`` (size >= 2)."""
    return 1 << ((size - 1).bit_length() - 1)


# --- which stored nodes a subtree needs ---------------------------------------------------


def perfect_keys(start: int, end: int) -> list[Key]:
    """``D[start:end]`` as perfect aligned subtrees, left to right, each smaller
    than the one before — true of every range the RFC's recursion visits (a
    left part is a power of two and the rest is smaller), and then
    ``MTH(D[start:end]) = H(P1, H(P2, … H(Pk-1, Pk)))``."""
    if not 0 <= start < end:
        raise ValueError(f"empty or negative range [{start}, {end})")
    keys: list[Key] = []
    previous = None
    while start < end:
        level = (end - start).bit_length() - 1
        while start % (1 << level):
            level -= 1
        if previous is not None and level >= previous:
            raise ValueError(f"[{start}, {end}) is not a subtree of an RFC 9162 tree")
        keys.append((level, start >> level))
        start += 1 << level
        previous = level
    return keys


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The subtrees whose hashes form PATH(index, D[0:size]), in proof order
    (the leaf's sibling first, the root's other child last)."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of size {size}")
    found: list[tuple[int, int]] = []
    start, end = 0, size
    while end - start > 1:
        k = split_point(end - start)
        if index < start + k:
            found.append((start + k, end))
            end = start + k
        else:
            found.append((start, start + k))
            start += k
    found.reverse()
    return found


def consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """The subtrees whose hashes form PROOF(old_size, D[0:new_size]) (RFC 9162
    §2.1.4.1's SUBPROOF, unrolled), in proof order.  Empty when either size is
    0 or they are equal."""
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from {old_size} to {new_size}")
    if old_size in (0, new_size):
        return []
    found: list[tuple[int, int]] = []
    start, end, complete = 0, new_size, True
    while True:
        if old_size - start == end - start:  # m == n in the subtree
            if not complete:
                found.append((start, end))
            break
        k = split_point(end - start)
        if old_size - start <= k:
            found.append((start + k, end))
            end = start + k
        else:
            found.append((start, start + k))
            start += k
            complete = False
    found.reverse()
    return found


def keys_of(ranges: Iterable[tuple[int, int]]) -> set[Key]:
    return {key for start, end in ranges for key in perfect_keys(start, end)}


# --- computing from a store --------------------------------------------------------------


def range_hash(start: int, end: int, nodes: Mapping[Key, bytes]) -> bytes:
    """``MTH(D[start:end])`` from perfect nodes (see :func:`perfect_keys`)."""
    hashes = []
    for key in perfect_keys(start, end):
        found = nodes.get(key)
        if found is None:
            raise MissingNode(f"node {key} is not stored (is the tree sealed that far?)")
        hashes.append(found)
    result = hashes.pop()
    while hashes:
        result = node_hash(hashes.pop(), result)
    return result


def root(size: int, store: NodeStore) -> bytes:
    """The root of the tree of the first ``size`` leaves."""
    if size == 0:
        return EMPTY_ROOT
    return range_hash(0, size, store.get_nodes(perfect_keys(0, size)))


def inclusion_proof(index: int, size: int, store: NodeStore) -> list[bytes]:
    """PATH(index, D[0:size]) from the store (one ``get_nodes`` call)."""
    ranges = inclusion_ranges(index, size)
    nodes = store.get_nodes(keys_of(ranges))
    return [range_hash(start, end, nodes) for start, end in ranges]


def consistency_proof(old_size: int, new_size: int, store: NodeStore) -> list[bytes]:
    """PROOF(old_size, D[0:new_size]) from the store (one ``get_nodes`` call)."""
    ranges = consistency_ranges(old_size, new_size)
    nodes = store.get_nodes(keys_of(ranges)) if ranges else {}
    return [range_hash(start, end, nodes) for start, end in ranges]


# --- verifying (RFC 9162 §2.1.3.2 and §2.1.4.2) ------------------------------------------


def verify_inclusion(leaf: bytes, index: int, size: int, path: Sequence[bytes], expected_root: bytes) -> bool:
    """True if ``path`` proves leaf ``index`` with hash ``leaf`` in the tree of
    ``size`` leaves whose root is ``expected_root``."""
    if not 0 <= index < size:
        return False
    fn, sn, result = index, size - 1, leaf
    for sibling in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            result = node_hash(result, sibling)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and result == expected_root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, path: Sequence[bytes]
) -> bool:
    """True if ``path`` proves that the tree (``old_size``, ``old_root``) is a
    prefix of the tree (``new_size``, ``new_root``).  Equal sizes need an empty
    path and equal roots; the empty tree is a prefix of every tree."""
    if not 0 <= old_size <= new_size:
        return False
    if old_size == new_size:
        return not path and old_root == new_root
    if old_size == 0:
        return not path and old_root == EMPTY_ROOT
    if not path:
        return False
    proof = list(path)
    if old_size & (old_size - 1) == 0:  # an exact power of two: the old root is a node of the new tree
        proof.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    first = second = proof[0]
    for sibling in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            first = node_hash(sibling, first)
            second = node_hash(sibling, second)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            second = node_hash(second, sibling)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and first == old_root and second == new_root


# --- appending ---------------------------------------------------------------------------


class Frontier:
    """The right edge of a growing tree: the perfect subtrees of the binary
    decomposition of ``size`` (largest first, at most 64).  :meth:`append`
    adds a leaf and reports the nodes it completes — exactly the nodes the
    store keeps, each once."""

    __slots__ = ("hashes", "levels", "size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        keys = perfect_keys(0, size) if size else []
        if len(keys) != len(hashes):
            raise ValueError(f"a frontier of size {size} has {len(keys)} nodes, got {len(hashes)}")
        self.size = size
        self.levels = [level for level, _ in keys]
        self.hashes = list(hashes)

    @classmethod
    def load(cls, size: int, store: NodeStore) -> Frontier:
        """The frontier of the stored tree of ``size`` leaves (one ``get_nodes`` call)."""
        if size == 0:
            return cls()
        keys = perfect_keys(0, size)
        nodes = store.get_nodes(keys)
        missing = [key for key in keys if key not in nodes]
        if missing:
            raise MissingNode(f"nodes {missing} of the tree of size {size} are not stored")
        return cls(size, [nodes[key] for key in keys])

    def append(self, leaf: bytes, completed: list[tuple[int, int, bytes]] | None = None) -> None:
        """Add one leaf; with ``completed``, append to it every node this
        finishes as (level, index, hash), the leaf itself first."""
        index = self.size
        levels, hashes = self.levels, self.hashes
        level, value = 0, leaf
        if completed is not None:
            completed.append((0, index, leaf))
        while levels and levels[-1] == level:
            levels.pop()
            value = _sha256(b"\x01" + hashes.pop() + value).digest()
            level += 1
            if completed is not None:
                completed.append((level, index >> level, value))
        levels.append(level)
        hashes.append(value)
        self.size = index + 1

    def root(self) -> bytes:
        if not self.hashes:
            return EMPTY_ROOT
        result = self.hashes[-1]
        for value in reversed(self.hashes[:-1]):
            result = node_hash(value, result)
        return result

    def copy(self) -> Frontier:
        twin = Frontier()
        twin.size, twin.levels, twin.hashes = self.size, list(self.levels), list(self.hashes)
        return twin


class MemoryNodeStore:
    """A :class:`NodeStore` in a dict (tests, benchmarks, small trees)."""

    def __init__(self) -> None:
        self.nodes: dict[Key, bytes] = {}

    def add(self, level: int, index: int, value: bytes) -> None:
        self.nodes[level, index] = value

    def get_nodes(self, keys: Collection[Key]) -> Mapping[Key, bytes]:
        return {key: self.nodes[key] for key in keys if key in self.nodes}


def build(leaves: Iterable[bytes]) -> tuple[Frontier, MemoryNodeStore]:
    """A tree over ``leaves`` in memory: its frontier and every stored node."""
    frontier, store = Frontier(), MemoryNodeStore()
    completed: list[tuple[int, int, bytes]] = []
    for leaf in leaves:
        frontier.append(leaf, completed)
        for level, index, value in completed:
            store.add(level, index, value)
        completed.clear()
    return frontier, store
