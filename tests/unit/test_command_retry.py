"""The bounds of the command retry plumbing: attempts, per-aggregate locks (LRU,
never evicting a lock in use) and the registration → event id cache (LRU)."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter

import pytest
from eventsourcing.persistence import RecordConflictError

from ledger import command_retry
from ledger.command_retry import (
    MAX_AGGREGATE_LOCKS,
    MAX_CACHED_EVENT_IDS,
    AggregateLocks,
    CommandRetry,
    LruCache,
)
from ledger.errors import VersionConflict


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(command_retry.random, "uniform", lambda _low, _high: 0.0)


def test_the_stated_bounds() -> None:
    assert MAX_AGGREGATE_LOCKS == 10_000 and AggregateLocks().max_size == MAX_AGGREGATE_LOCKS
    assert MAX_CACHED_EVENT_IDS == 100_000
    with pytest.raises(ValueError):
        AggregateLocks(0)
    with pytest.raises(ValueError):
        LruCache[str, str](0)


def test_cache_evicts_the_least_recently_used_entry_at_its_bound() -> None:
    cache: LruCache[str, str] = LruCache(3)
    for key in "abc":
        cache.put(key, key.upper())
    assert cache.get("a") == "A"  # a is now the most recently used; b the least
    cache.put("d", "D")
    assert len(cache) == 3
    assert "b" not in cache and cache.get("b") is None
    assert [cache.get(k) for k in "acd"] == ["A", "C", "D"]


def test_cache_never_grows_past_its_bound() -> None:
    cache: LruCache[int, int] = LruCache(100)
    for n in range(1_000):
        cache.put(n, n)
        assert len(cache) <= 100
    assert 899 not in cache and 900 in cache and 999 in cache


def test_idle_locks_are_evicted_least_recently_used_first_at_the_bound() -> None:
    locks = AggregateLocks(max_size=2)
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for key in (a, b, a, c):  # b is the least recently used when c arrives
        with locks.reserved(key):
            pass
    assert len(locks) == 2
    assert a in locks and c in locks and b not in locks


def test_a_reserved_lock_is_never_evicted_while_others_churn() -> None:
    locks = AggregateLocks(max_size=2)
    held = uuid.uuid4()
    with locks.reserved(held) as lock, lock:
        for _ in range(10):  # churn through many other aggregates
            with locks.reserved(uuid.uuid4()):
                pass
            assert held in locks and len(locks) == 2
        with locks.reserved(held) as again:  # a second command on it gets the same lock
            assert again is lock and again.locked()
    for _ in range(2):  # once idle, it ages out like any other
        with locks.reserved(uuid.uuid4()):
            pass
    assert len(locks) == 2 and held not in locks


def test_the_bound_is_exceeded_only_by_locks_in_use_and_restored_after() -> None:
    locks = AggregateLocks(max_size=1)
    first, second = uuid.uuid4(), uuid.uuid4()
    with locks.reserved(first), locks.reserved(second):
        assert first in locks and second in locks  # both in use: neither may go
        assert len(locks) == 2
    with locks.reserved(uuid.uuid4()):
        pass
    assert len(locks) == 1 and first not in locks and second not in locks


def test_eviction_never_lets_two_threads_into_one_aggregate() -> None:
    """Far more aggregates than the bound, so eviction runs constantly, yet each
    aggregate's commands still take turns."""
    locks = AggregateLocks(max_size=2)
    keys = [uuid.uuid4() for _ in range(6)]
    inside: Counter[uuid.UUID] = Counter()
    overlaps: list[uuid.UUID] = []
    guard = threading.Lock()

    def worker(n: int) -> None:
        for i in range(300):
            key = keys[(n + i) % len(keys)]
            with locks.reserved(key) as lock, lock:
                with guard:
                    inside[key] += 1
                    if inside[key] > 1:
                        overlaps.append(key)
                time.sleep(0)  # let other threads run while this one is inside
                with guard:
                    inside[key] -= 1

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps == []
    # Locks still reserved at the last insertion were kept (at most one per
    # thread); idle now, the next insertion brings the map back to the bound.
    assert len(locks) <= 2 + len(threads)
    with locks.reserved(uuid.uuid4()):
        pass
    assert len(locks) == 2


@pytest.mark.usefixtures("no_backoff")
def test_retry_runs_the_command_again_after_a_conflict() -> None:
    attempts = []

    def command() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise RecordConflictError("someone saved first")
        return "done"

    assert CommandRetry(max_attempts=5).run(uuid.uuid4(), command) == "done"
    assert len(attempts) == 3


@pytest.mark.usefixtures("no_backoff")
def test_retry_gives_up_with_a_version_conflict_at_max_attempts() -> None:
    attempts = []

    def command() -> str:
        attempts.append(1)
        raise RecordConflictError("always behind")

    retry = CommandRetry(max_attempts=4, max_locks=1)
    with pytest.raises(VersionConflict):
        retry.run(uuid.uuid4(), command)
    assert len(attempts) == 4
    assert len(retry.locks) == 1  # released and still bounded after giving up


def test_other_errors_are_not_retried_and_release_the_lock() -> None:
    key = uuid.uuid4()
    retry = CommandRetry(max_attempts=5)

    def command() -> None:
        raise KeyError("not a conflict")

    with pytest.raises(KeyError):
        retry.run(key, command)
    with retry.locks.reserved(key) as lock:
        assert not lock.locked()
