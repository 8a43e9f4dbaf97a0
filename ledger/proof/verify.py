"""``ledger verify``: recompute every hash, the chain and the Merkle tree from
the stored events, and compare them with what was sealed and signed (R23).

One pass over the event table in log order, in one REPEATABLE READ snapshot
(writers and the sealer go on meanwhile; the pass sees one moment), merged
with ``ledger_event_hashes`` by position.  For the n-th event it recomputes
the canonical encoding, entry hash, chain hash and leaf (``canonical``), and
grows the tree (``merkle.Frontier``).  The first disagreement ends the pass
and names its position:

* ``changed`` — the event's bytes differ from when it was sealed (entry hash);
* ``missing`` — a sealed position has no event any more (deleted, truncated);
* ``inserted`` — an event inside the sealed range was never sealed (forged);
* ``reordered`` — an event's leaf index differs (events moved or removed);
* ``chain`` — the stored chain hash differs from the recomputed one;
* ``checkpoint`` — the recomputed root of the first ``size`` events differs
  from a signed checkpoint (catches tampering that rewrote the proof tables
  too, or happened before sealing): the change lies between the last matching
  checkpoint and this one, and the position named is the first event after the
  last matching checkpoint;
* ``signature`` — a checkpoint's signature is not valid under a trusted key;
* ``tree`` / ``seal`` — the stored tree or seal row disagrees with the events.

Events after the sealed position (sealed within about a second) are hashed
into the tree but have nothing stored to compare with.  Batches are read with
server-side cursors (``batch_size`` rows per round trip), so memory stays flat
whatever the log's size; the rate is printed by ``bench/proof.py``.

:func:`verify_checkpoint` checks a checkpoint saved elsewhere (an auditor's
file): its signature, and that its tree is a prefix of today's log — by a
consistency proof from the saved size to today's size, with today's nodes and
root *recomputed from the events* (not read from the proof tables, which an
attacker could have left untouched while editing events).
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any

import psycopg

from ledger.proof import canonical, checkpoints, merkle, queries
from ledger.proof.checkpoints import Checkpoint
from ledger.proof.snapshot_reader import SnapshotReader, snapshot

DEFAULT_BATCH_SIZE = 20_000


@dataclass(frozen=True)
class Problem:
    kind: str  #: changed, missing, inserted, reordered, chain, checkpoint, signature, tree, seal
    position: int | None  #: the first bad position (None: not one event's fault, e.g. a bad signature)
    detail: str

    def __str__(self) -> str:
        where = f"position {self.position}: " if self.position is not None else ""
        return f"{where}{self.kind}: {self.detail}"


@dataclass(frozen=True)
class VerifyReport:
    events: int  #: events read (= the recomputed tree's size)
    sealed: int  #: of which sealed (compared with the stored hashes)
    checkpoints: int  #: signed checkpoints compared
    root: bytes  #: recomputed root of the events read (meaningful when ok)
    seconds: float
    problem: Problem | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def __str__(self) -> str:
        """One line for ``ledger verify``."""
        if self.problem is not None:
            return f"FAIL {self.problem}"
        return (f"OK {self.events:,} events ({self.sealed:,} sealed), {self.checkpoints} signed checkpoints, "
                f"root {self.root.hex()}, {self.seconds:.1f} s ({self.rate:,.0f} events/s)")


@dataclass(frozen=True)
class CheckpointCheck:
    ok: bool
    detail: str
    checkpoint: Checkpoint | None = None
    today_size: int = 0
    today_root: bytes = b""
    consistency_path: list[bytes] = field(default_factory=list)
    #: When the check failed: the first bad position, found by a full ``verify_log`` pass.
    problem: Problem | None = None

    def __str__(self) -> str:
        return self.detail + (f"; first problem: {self.problem}" if self.problem else "")


def verify_log(
    database_url: str, *, trusted_keys: Sequence[bytes], extra: Sequence[Checkpoint] = (),
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> VerifyReport:
    """Recompute everything (see the module docstring); ``trusted_keys`` are
    the raw Ed25519 public keys checkpoints may be signed with; ``extra``
    checkpoints (e.g. an auditor's file) are compared too."""
    with snapshot(database_url) as conn:
        return _Pass(conn, trusted_keys, extra, batch_size).run()


def verify_checkpoint(
    database_url: str, saved: Checkpoint | str, *, trusted_keys: Sequence[bytes],
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> CheckpointCheck:
    """``saved`` (a Checkpoint or its JSON) is validly signed and its tree is a
    prefix of today's log (all events stored now)."""
    try:
        checkpoint = saved if isinstance(saved, Checkpoint) else Checkpoint.from_json(saved)
    except ValueError as error:
        return CheckpointCheck(False, f"not a checkpoint: {error}")
    if not _signed_by(checkpoint, trusted_keys):
        return CheckpointCheck(False, f"the signature is not valid under a trusted key ({checkpoint.key_id})",
                               checkpoint)
    with snapshot(database_url) as conn:
        today = _Pass(conn, trusted_keys, (), batch_size, compare_stored=False)
        total = int(conn.execute(f"SELECT count(*) FROM {queries.EVENTS_TABLE}").fetchone()[0])  # type: ignore[index]
        if checkpoint.size > total:
            return CheckpointCheck(False, f"the log has {total} events, fewer than the checkpoint's "
                                   f"{checkpoint.size}: events were removed", checkpoint, total,
                                   problem=_locate(database_url, checkpoint, trusted_keys, batch_size))
        nodes = today.capture(merkle.keys_of(merkle.consistency_ranges(checkpoint.size, total)))
        report = today.run()
    if not report.ok:
        return CheckpointCheck(False, f"the log could not be read: {report.problem}", checkpoint)
    ranges = merkle.consistency_ranges(checkpoint.size, report.events)
    path = [merkle.range_hash(start, end, nodes) for start, end in ranges]
    if not merkle.verify_consistency(checkpoint.size, report.events, checkpoint.root, report.root, path):
        return CheckpointCheck(
            False, f"today's log of {report.events} events does not extend the checkpoint of {checkpoint.size} "
            f"signed at {checkpoint.time}: an event among its first {checkpoint.size} was changed, removed, "
            "inserted or moved", checkpoint, report.events, report.root, path,
            _locate(database_url, checkpoint, trusted_keys, batch_size))
    return CheckpointCheck(
        True, f"the checkpoint of {checkpoint.size} events signed at {checkpoint.time} is a prefix of today's "
        f"log of {report.events} events", checkpoint, report.events, report.root, path)


def _locate(
    database_url: str, checkpoint: Checkpoint, trusted_keys: Sequence[bytes], batch_size: int,
) -> Problem | None:
    """After a failed check: the first bad position, by a full pass that also
    compares the stored hashes and the failed checkpoint."""
    return verify_log(database_url, trusted_keys=trusted_keys, extra=[checkpoint], batch_size=batch_size).problem


def _signed_by(checkpoint: Checkpoint, trusted_keys: Sequence[bytes]) -> bool:
    return any(checkpoints.verify_signature(checkpoint, key) for key in trusted_keys)


def _missing(row: tuple[int, int, bytes, bytes], how: str) -> Problem:
    return Problem("missing", row[0], f"the sealed event (leaf {row[1]}) is no longer stored: {how}")


class _Found(Exception):
    def __init__(self, problem: Problem) -> None:
        self.problem = problem


_HEAD = struct.Struct(">4sQ16sQI")
_LEN = struct.Struct(">I")


class _Pass:
    """One streaming pass; construct, optionally :meth:`capture`, then :meth:`run`."""

    def __init__(
        self, conn: psycopg.Connection[Any], trusted_keys: Sequence[bytes], extra: Sequence[Checkpoint],
        batch_size: int, *, compare_stored: bool = True,
    ) -> None:
        self.conn, self.batch_size, self.compare_stored = conn, batch_size, compare_stored
        self.seal = queries.seal_state(conn)
        self.checkpoints = [*checkpoints.stored(conn), *extra] if compare_stored else []
        self.trusted_keys = trusted_keys
        self._captured: dict[merkle.Key, bytes] = {}
        self._capture_at: dict[int, set[merkle.Key]] = {}

    def capture(self, keys: set[merkle.Key]) -> dict[merkle.Key, bytes]:
        """Have the pass keep these recomputed nodes; returns the dict it fills."""
        for level, index in keys:
            self._capture_at.setdefault(((index + 1) << level) - 1, set()).add((level, index))
        return self._captured

    def run(self) -> VerifyReport:
        started = time.monotonic()
        frontier = merkle.Frontier()
        sealed = 0
        try:
            by_size = self._check_signatures()
            sealed = self._stream(frontier, by_size)
            self._check_end(frontier, sealed, by_size)
        except _Found as found:
            return VerifyReport(frontier.size, sealed, len(self.checkpoints), frontier.root(),
                                time.monotonic() - started, found.problem)
        return VerifyReport(frontier.size, sealed, len(self.checkpoints), frontier.root(),
                            time.monotonic() - started)

    def _check_signatures(self) -> dict[int, list[Checkpoint]]:
        by_size: dict[int, list[Checkpoint]] = {}
        for checkpoint in self.checkpoints:
            if not _signed_by(checkpoint, self.trusted_keys):
                raise _Found(Problem("signature", None, f"the checkpoint of size {checkpoint.size} signed at "
                                     f"{checkpoint.time} (key {checkpoint.key_id}) has no valid trusted signature"))
            by_size.setdefault(checkpoint.size, []).append(checkpoint)
        return by_size

    def _stream(self, frontier: merkle.Frontier, by_size: dict[int, list[Checkpoint]]) -> int:
        """The pass itself; returns how many events were compared with stored hashes."""
        sealed_position = self.seal.position if self.compare_stored else 0
        if 0 in by_size:
            self._compare_root(0, frontier, by_size[0], None)
        with closing(SnapshotReader(self.conn, self.batch_size, sealed_position).batches()) as batches:
            compared = self._compare(batches, frontier, by_size, sealed_position)
        return compared

    def _compare(
        self, batches: Iterator[tuple[list[Any], list[Any]]], frontier: merkle.Frontier,
        by_size: dict[int, list[Checkpoint]], sealed_position: int,
    ) -> int:
        chain = canonical.GENESIS
        # sizes (= leaf index + 1) that need a look: checkpoints, captured nodes, the sealed size
        watch = set(by_size) | {i + 1 for i in self._capture_at} | {self.seal.size}
        good_size, good_next_position = 0, None  # the last matching checkpoint, and the event after it
        head, length, tag = _HEAD.pack, _LEN.pack, canonical.TAG
        compared = 0
        for rows, hash_rows in batches:
            hashes = iter(hash_rows)  # the sealed rows of this batch's positions, in order
            pending = next(hashes, None)
            for position, raw_id, version, topic, state in rows:
                encoding = head(tag, position, raw_id, version, len(topic)) + topic + length(len(state)) + state
                entry = sha256(encoding).digest()
                chain = sha256(chain + entry).digest()
                leaf = sha256(b"\x00" + encoding).digest()
                index = frontier.size
                if pending is not None and pending[0] < position:
                    raise _Found(_missing(pending, "deleted"))
                if position <= sealed_position:
                    if pending is None or pending[0] != position:
                        raise _Found(Problem("inserted", position, "this event was never sealed: it was added "
                                             "to the log after the events around it"))
                    _, leaf_index, stored_entry, stored_chain = pending
                    if stored_entry != entry:
                        raise _Found(Problem("changed", position, "its bytes differ from when it was sealed "
                                             f"(entry hash {entry.hex()}, sealed {stored_entry.hex()})"))
                    if leaf_index != index:
                        raise _Found(Problem("reordered", position, f"it was sealed as leaf {leaf_index}, "
                                             f"it is leaf {index} now: events before it were removed or added"))
                    if stored_chain != chain:
                        raise _Found(Problem("chain", position, "the stored chain hash differs from the "
                                             "recomputed one (the proof tables were edited)"))
                    compared += 1
                    pending = next(hashes, None)
                if index == good_size:
                    good_next_position = position
                if index + 1 not in watch:
                    frontier.append(leaf)
                    continue
                completed: list[tuple[int, int, bytes]] = []
                frontier.append(leaf, completed)
                wanted = self._capture_at.get(index, ())
                for level, node_index, value in completed:
                    if (level, node_index) in wanted:
                        self._captured[level, node_index] = value
                if index + 1 == self.seal.size:
                    self._root_at_seal = frontier.root()
                if index + 1 in by_size:
                    self._compare_root(good_size, frontier, by_size[index + 1], good_next_position)
                    good_size, good_next_position = index + 1, None
            if pending is not None:
                raise _Found(_missing(pending, "deleted" if rows else "the log's tail was removed"))
        return compared

    def _compare_root(
        self, good_size: int, frontier: merkle.Frontier, signed: list[Checkpoint], first_after_good: int | None,
    ) -> None:
        root = frontier.root()
        for checkpoint in signed:
            if checkpoint.root != root:
                raise _Found(Problem(
                    "checkpoint", first_after_good,
                    f"the first {checkpoint.size} events do not match the checkpoint signed at {checkpoint.time}"
                    f" (root {root.hex()}, signed {checkpoint.root.hex()}); the earliest possible change is the "
                    f"event after the last matching checkpoint (size {good_size})",
                ))

    def _check_end(self, frontier: merkle.Frontier, sealed: int, by_size: dict[int, list[Checkpoint]]) -> None:
        beyond = [size for size in by_size if size > frontier.size]
        if beyond:
            raise _Found(Problem("checkpoint", None, f"a checkpoint covers {max(beyond)} events but the log has "
                                 f"{frontier.size}: events were removed"))
        if not self.compare_stored:
            return
        if sealed != self.seal.size:
            raise _Found(Problem("seal", None, f"{self.seal.size} events are recorded as sealed, {sealed} found"))
        if self.seal.size and queries.tree_root(self.conn, self.seal.size) != self._root_at_seal:
            raise _Found(Problem("tree", None, f"the stored tree's root at size {self.seal.size} differs from "
                                 "the recomputed one (ledger_merkle_nodes was edited)"))

    _root_at_seal: bytes | None = None
