"""Reading the log for ``ledger verify``: one REPEATABLE READ snapshot, and
the event rows with their sealed hash rows, one batch ahead in a thread.

The reader thread overlaps the server's work and the transfer with the
caller's hashing (the hashing holds the GIL; the reads mostly wait on the
socket).  The event table is read here directly, not through ``event_log``:
the pass needs the stored bytes and the speed of a server-side cursor.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import IsolationLevel

from ledger.database import connect
from ledger.proof import queries


@contextmanager
def snapshot(url: str) -> Iterator[psycopg.Connection[Any]]:
    """A read-only REPEATABLE READ transaction on a connection of its own (with
    the ledger's session timeouts: the pass never waits on a lock or sits idle)."""
    conn = connect(url, autocommit=False)
    try:
        conn.isolation_level = IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        yield conn
    finally:
        try:
            conn.rollback()
        finally:
            conn.close()


class SnapshotReader:
    """The pass's reads, one batch ahead in a thread of its own, so that the
    server's work and the transfer overlap the hashing.  Yields (event rows,
    sealed hash rows with positions up to the batch's last event), and finally
    ([], the sealed rows after the last event: a removed tail).  All reads use
    the pass's connection, so they share its snapshot."""

    EVENTS = (
        "SELECT notification_id, uuid_send(originator_id), originator_version, convert_to(topic, 'UTF8'), state"
        f" FROM {queries.EVENTS_TABLE} ORDER BY notification_id"
    )
    HASHES = (
        "SELECT position, leaf_index, entry_hash, chain_hash FROM ledger_event_hashes"
        " WHERE position > %s AND position <= %s ORDER BY position"
    )

    def __init__(self, conn: psycopg.Connection[Any], batch_size: int, sealed_position: int) -> None:
        self.conn, self.batch_size, self.sealed_position = conn, batch_size, sealed_position
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=2)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._read, name="ledger-verify-read", daemon=True)

    def batches(self) -> Generator[tuple[list[Any], list[Any]], None, None]:
        self.thread.start()
        try:
            while True:
                item = self.queue.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
                if not item[0]:
                    return
        finally:
            self.stop.set()
            while self.thread.is_alive():  # unblock a pending put, then let it finish its read
                try:
                    self.queue.get(timeout=0.05)
                except queue.Empty:
                    pass
            self.thread.join()

    def _read(self) -> None:
        try:
            with self.conn.cursor(name="ledger_verify_events", binary=True) as events, \
                    self.conn.cursor(binary=True) as hashes:
                events.itersize = self.batch_size
                events.execute(self.EVENTS)
                after = 0
                while not self.stop.is_set():
                    rows = events.fetchmany(self.batch_size)
                    upto = min(rows[-1][0], self.sealed_position) if rows else self.sealed_position
                    sealed = hashes.execute(self.HASHES, (after, upto)).fetchall() if upto > after else []
                    self._put((rows, sealed))
                    if not rows:
                        break
                    after = max(after, upto)
            self._put(None)
        except BaseException as error:
            self._put(error)

    def _put(self, item: Any) -> None:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.05)
                return
            except queue.Full:
                pass
