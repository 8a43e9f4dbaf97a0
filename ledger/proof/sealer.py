"""The sealer: hashes, chains and tree-stores every stored event (R23).

It is a :class:`~ledger.log_follower.LogConsumer`: the follower hands it the
notification log in order, and for each batch, in **one transaction**, it

1. locks its row in ``ledger_proof_seal`` and checks that the batch starts
   where that row says (otherwise another sealer went further: it returns that
   position and the follower reads from there);
2. computes each event's canonical encoding (``ledger.proof.canonical``), entry
   hash, chain hash and Merkle leaf, and the perfect subtrees the leaves
   complete (``merkle.Frontier``);
3. COPYs them into ``ledger_event_hashes`` and ``ledger_merkle_nodes`` and moves
   the row's position, size and last chain hash.

Killed at any line, the transaction happened whole or not at all, so every
event is sealed exactly once; the primary keys would refuse a second copy of a
row rather than let the tables diverge.  One sealer per database is the normal
case (an advisory lock on the follower's connection keeps others on stand-by);
the row lock makes even two at once safe.

**Sealing window**: the follower wakes on the event store's NOTIFY at commit,
so an event is sealed (and has its ``hash``) within :data:`COALESCE` (0.1 s:
commits arriving closer together are sealed together) plus one batch's work
under normal load, and about one second under heavy load (one batch of up to
``batch_size`` events); if a NOTIFY is missed the follower re-reads after
``reread_after`` (1 s).  While the sealer is down, events stay unsealed (their
``hash`` is null, proofs stop at the sealed size) and are sealed on restart.

After each batch the sealer signs a checkpoint when ``CheckpointSchedule``
says so (and, while idle, once ``every_seconds`` have passed), in a
transaction of its own: a crash in between only delays it.

The events are the follower's ``Notification`` objects — the stored fields as
the recorder read them, nothing decoded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import psycopg
from eventsourcing.persistence import ApplicationRecorder, Notification

from ledger.database import Database
from ledger.log_follower import CommitListener, LogBatch, LogConsumer, LogFollower, Standby, read_batch
from ledger.proof import canonical, checkpoints, merkle, queries

if TYPE_CHECKING:
    from ledger.container import Ledger

log = logging.getLogger(__name__)

#: Events per transaction: one second's worth at most under load, and small
#: enough that a batch's rows (~3 per event) stay a few MB.
DEFAULT_BATCH_SIZE = 2000
#: Seconds: while following, a batch that is not full waits until this long after
#: the previous seal, then is read again whole — a trickle of single commits is
#: sealed ~10 times a second, not once per commit (the write path keeps its CPU).
COALESCE = 0.1
LOCK_NAME = "ledger-proof-sealer"


def seal_rows(
    notifications: Sequence[Notification], frontier: merkle.Frontier, previous_chain: bytes,
) -> tuple[list[tuple[int, int, bytes, bytes]], list[tuple[int, int, bytes]], bytes]:
    """(hash rows, node rows, last chain hash) for ``notifications`` appended to
    the tree whose right edge is ``frontier`` (which this advances)."""
    hash_rows: list[tuple[int, int, bytes, bytes]] = []
    node_rows: list[tuple[int, int, bytes]] = []
    chain = previous_chain
    encode, hashes, append = canonical.encode, canonical.hashes, frontier.append
    for n in notifications:
        encoding = encode(n.id, n.originator_id, n.originator_version, n.topic, bytes(n.state))
        entry, chain, leaf = hashes(encoding, chain)
        hash_rows.append((n.id, frontier.size, entry, chain))
        append(leaf, node_rows)
    return hash_rows, node_rows, chain


class Sealer(LogConsumer):
    """See the module docstring.  ``run(stop)`` follows the log until ``stop``
    is set (a ``workers.base.Worker``); ``catch_up`` seals synchronously up to
    the head (tests, ``ledger checkpoint``, benchmarks)."""

    name = "sealer"

    def __init__(
        self, db: Database, recorder: ApplicationRecorder, database_url: str, *,
        signer: checkpoints.CheckpointSigner | None = None,
        schedule: checkpoints.CheckpointSchedule | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        self.db, self.recorder, self.database_url = db, recorder, database_url
        self.signer = signer
        self.schedule = schedule or checkpoints.CheckpointSchedule()
        self.batch_size = batch_size
        self.follower: LogFollower | None = None  #: while ``run`` follows: its health
        self._frontier: merkle.Frontier | None = None  # right edge as committed (None: load it)
        self._sealed_size: int | None = None  # as last read or committed
        self._coalesce = 0.0  # COALESCE while following (run), 0 when catching up
        self._sealed_at = 0.0  # monotonic time of the last seal commit

    def run(self, stop: threading.Event) -> None:
        self._coalesce = COALESCE
        self.follower = LogFollower(
            self.recorder, self.database_url, self, name=self.name,
            batch_size=self.batch_size, reread_after=1.0, backoff_initial=0.5, backoff_max=30.0,
        )
        self.follower.run(stop)

    def catch_up(self) -> int:
        """Seal everything stored now; returns the sealed size."""
        position = self.resume()
        while True:
            batch = read_batch(self.recorder, position, self.batch_size)
            if batch.reached <= position:
                break
            position = self.consume(batch)
        with self.db.transaction() as conn:
            return queries.seal_state(conn).size

    # --- LogConsumer -------------------------------------------------------------------

    def attach(self, listener: CommitListener) -> None:
        if not listener.try_advisory_lock(LOCK_NAME):
            raise Standby("another sealer holds the seal")

    def resume(self) -> int:
        self._frontier = None
        with self.db.transaction() as conn:
            state = queries.seal_state(conn)
        self._sealed_size = state.size
        return state.position

    def consume(self, batch: LogBatch) -> int:
        early = self._sealed_at + self._coalesce - time.monotonic()
        if early > 0 and len(batch.notifications) < self.batch_size:
            time.sleep(early)  # at most COALESCE; then the follower reads everything committed meanwhile
            return batch.after
        with self.db.transaction() as conn:
            # No fsync of its own: sealing is recomputable from the events.  A crash may
            # lose the last sealing commits whole (row, hashes and position together) and
            # they are redone identically; WAL order keeps every later commit (a
            # checkpoint) behind them.  The write path keeps its fsync budget.
            conn.execute("SET LOCAL synchronous_commit TO OFF")
            state = queries.seal_state(conn, lock=True)
            if state.position != batch.after:
                self._frontier, self._sealed_size = None, state.size
                return state.position  # another sealer moved it: read from there
            frontier = self._edge(conn, state.size)
            hash_rows, node_rows, chain = seal_rows(batch.notifications, frontier, state.chain_hash)
            _copy(conn, "COPY ledger_event_hashes (position, leaf_index, entry_hash, chain_hash) FROM STDIN",
                  ("int8", "int8", "bytea", "bytea"), hash_rows)
            _copy(conn, "COPY ledger_merkle_nodes (level, idx, hash) FROM STDIN",
                  ("int2", "int8", "bytea"), node_rows)
            conn.execute(
                "UPDATE ledger_proof_seal SET position = %s, size = %s, chain_hash = %s, updated_at = now()"
                " WHERE id", (batch.reached, frontier.size, chain),
            )
        self._frontier, self._sealed_size = frontier, frontier.size  # committed: the next batch continues
        self._sealed_at = time.monotonic()
        self._maybe_checkpoint(frontier.size)
        return batch.reached

    def idle(self) -> float | None:
        """Caught up: sign the last events once ``every_seconds`` have passed."""
        if self._sealed_size is not None:
            self._maybe_checkpoint(self._sealed_size)
        return None

    def abandon(self, error: BaseException) -> None:
        self._frontier = None

    # --- internals ---------------------------------------------------------------------

    def _edge(self, conn: psycopg.Connection[Any], size: int) -> merkle.Frontier:
        """A copy of the committed right edge (loaded when not known or stale),
        so that a rolled-back batch leaves the cached one intact."""
        if self._frontier is None or self._frontier.size != size:
            self._frontier = merkle.Frontier.load(size, queries.PgNodeStore(conn))
        return self._frontier.copy()

    def _maybe_checkpoint(self, size: int) -> None:
        if self.signer is None or size == 0 or not self.schedule.due(size):
            return
        with self.db.transaction() as conn:
            checkpoint = checkpoints.produce(conn, self.signer)
        self.schedule.signed(checkpoint.size)
        log.info("checkpoint signed: size %d root %s", checkpoint.size, checkpoint.root.hex())


def _copy(conn: psycopg.Connection[Any], statement: str, types: Sequence[str], rows: Sequence[Any]) -> None:
    if not rows:
        return
    with conn.cursor() as cursor, cursor.copy(statement + " (FORMAT BINARY)") as copy:  # type: ignore[arg-type]
        copy.set_types(types)
        for row in rows:
            copy.write_row(row)


def build(ledger: Ledger) -> Sealer:
    """``ledger worker sealer`` / ``ledger run`` (to be listed in
    entrypoints/worker_registry.py): signs checkpoints with the configured key."""
    key = checkpoints.load_signing_key(ledger.settings.data_dir)
    signer = checkpoints.CheckpointSigner(key, clock=ledger.clock)
    return Sealer(ledger.db, ledger.store.recorder, ledger.database_url, signer=signer)
