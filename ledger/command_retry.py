"""Re-running a command whose save lost an optimistic-concurrency race.

Every command reads the aggregates it needs, decides, and saves their new events
in one transaction; when another writer saved first, the save raises
``RecordConflictError`` and the whole command is run again against the new state.
That retry alone keeps the rules (R9: no oversell) across processes.  Within one
process an in-process lock per hot aggregate makes threads take turns instead of
conflicting, which only saves wasted attempts: correctness never depends on it.

Everything here is bounded:

* attempts: ``max_attempts`` per command, then ``VersionConflict`` (409);
* locks: at most ``MAX_AGGREGATE_LOCKS`` idle locks are kept, least recently used
  evicted first, and a lock still reserved by a running command is never evicted;
* registration → event ids: at most ``MAX_CACHED_EVENT_IDS`` entries, least
  recently used evicted first.
"""

from __future__ import annotations

import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar
from uuid import UUID

from eventsourcing.persistence import RecordConflictError

from ledger.errors import VersionConflict

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

MAX_AGGREGATE_LOCKS = 10_000
"""Idle per-aggregate locks kept in one process (a few hundred bytes each)."""

MAX_CACHED_EVENT_IDS = 100_000
"""Registration id → event id pairs remembered in one process (~200 bytes each)."""


class LruCache(Generic[K, V]):
    """A thread-safe map of at most ``max_size`` entries: putting one more evicts
    the least recently used (read or written) entry.  Meant for facts that never
    change, so an evicted entry only costs one more lookup."""

    def __init__(self, max_size: int) -> None:
        if max_size < 1:
            raise ValueError("an LRU cache needs room for at least one entry")
        self.max_size = max_size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._guard = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._guard:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        with self._guard:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.max_size:
                self._items.popitem(last=False)

    def __contains__(self, key: object) -> bool:
        with self._guard:
            return key in self._items

    def __len__(self) -> int:
        with self._guard:
            return len(self._items)


class _Reservation:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0  # commands between reserved() entry and exit, holding or waiting


class AggregateLocks:
    """One in-process lock per aggregate id, kept as a bounded LRU.

    At most ``max_size`` locks are kept; creating one more evicts the least
    recently used locks that no running command has reserved.  A reserved lock
    (held, or waited for) is never evicted: evicting it would let a second thread
    create a fresh lock for the same aggregate and run alongside the holder.  So
    the map exceeds ``max_size`` only while more than ``max_size`` distinct
    aggregates are in use at once, by at most the number of threads running
    commands, and shrinks back on the next insertion once they finish.
    """

    def __init__(self, max_size: int = MAX_AGGREGATE_LOCKS) -> None:
        if max_size < 1:
            raise ValueError("room for at least one lock is needed")
        self.max_size = max_size
        self._entries: OrderedDict[UUID, _Reservation] = OrderedDict()
        self._guard = threading.Lock()

    @contextmanager
    def reserved(self, key: UUID) -> Iterator[threading.Lock]:
        """The lock for ``key``, kept from eviction until the block exits.  The
        caller acquires it (possibly several times) inside the block."""
        with self._guard:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Reservation()
            else:
                self._entries.move_to_end(key)
            entry.users += 1  # before evicting, so the new entry is never the victim
            self._evict_idle()
        try:
            yield entry.lock
        finally:
            with self._guard:
                entry.users -= 1

    def _evict_idle(self) -> None:
        excess = len(self._entries) - self.max_size
        if excess <= 0:
            return
        victims: list[UUID] = []
        for key, entry in self._entries.items():  # oldest first
            if entry.users == 0:
                victims.append(key)
                if len(victims) == excess:
                    break
        for key in victims:
            del self._entries[key]

    def __contains__(self, key: object) -> bool:
        with self._guard:
            return key in self._entries

    def __len__(self) -> int:
        with self._guard:
            return len(self._entries)


class CommandRetry:
    """Runs a command until its save does not conflict, at most ``max_attempts``
    times, serialized within this process on the lock of one aggregate."""

    def __init__(self, *, max_attempts: int, max_locks: int = MAX_AGGREGATE_LOCKS) -> None:
        self.max_attempts = max_attempts
        self.locks = AggregateLocks(max_locks)

    def run(self, key: UUID, command: Callable[[], T]) -> T:
        """``command()``'s result; ``VersionConflict`` after ``max_attempts``
        conflicting saves.  The lock is held for one attempt at a time and released
        during the randomized back-off, so other threads can make progress."""
        with self.locks.reserved(key) as lock:
            for attempt in range(self.max_attempts):
                try:
                    with lock:
                        return command()
                except RecordConflictError:
                    time.sleep(random.uniform(0, 0.002 * (attempt + 1)))
        raise VersionConflict("too many concurrent changes; try again")
