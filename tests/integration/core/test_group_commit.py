"""Group commit in the event store's recorder: concurrent saves share commits,
each stays atomic, and only the callers that really conflict get the conflict."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from eventsourcing.persistence import IntegrityError

from ledger import event_log
from ledger.application import LedgerRecorder
from ledger.container import Ledger
from ledger.domain.organizer import Organizer


def test_concurrent_saves_are_grouped_and_all_committed(fresh_ledger: Ledger) -> None:
    recorder = fresh_ledger.store.recorder
    assert isinstance(recorder, LedgerRecorder)
    commits: list[int] = []
    original = recorder._insert_now

    def counting(events, **kwargs):  # type: ignore[no-untyped-def]
        commits.append(len(events))
        return original(events, **kwargs)

    recorder._insert_now = counting  # type: ignore[method-assign,assignment]
    start = threading.Barrier(16)

    def save(_: int) -> None:
        organizer = Organizer.register(id=uuid.uuid4(), name="x", country="US", plan_size=5)
        organizer.change_plan(6)  # two events: they must land together
        start.wait()
        fresh_ledger.store.save(organizer)

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(save, range(160)))
    assert event_log.head(fresh_ledger.store) == 320
    assert len(commits) < 160  # some commits carried several saves
    items = event_log.read(fresh_ledger.store, after=0, limit=400)
    by_aggregate: dict[str, list[int]] = {}
    for item in items:
        by_aggregate.setdefault(item.aggregate_id, []).append(item.aggregate_version)
    assert all(versions == [1, 2] for versions in by_aggregate.values())


def test_only_the_conflicting_saves_fail(fresh_ledger: Ledger) -> None:
    store = fresh_ledger.store
    organizer = Organizer.register(id=uuid.uuid4(), name="x", country="US", plan_size=5)
    store.save(organizer)
    start = threading.Barrier(12)

    def change(i: int) -> str:
        if i % 2:  # six rivals for version 2 of the same organizer
            mine: Organizer = store.repository.get(organizer.id)
            mine.change_plan(10 + i)
        else:  # six unrelated new organizers
            mine = Organizer.register(id=uuid.uuid4(), name="y", country="US", plan_size=5)
        start.wait()
        try:
            store.save(mine)
            return "saved"
        except IntegrityError:
            return "conflict"

    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(change, range(12)))
    rivals = [r for i, r in enumerate(results) if i % 2]
    others = [r for i, r in enumerate(results) if not i % 2]
    assert rivals.count("saved") == 1 and rivals.count("conflict") == 5
    assert others == ["saved"] * 6
    assert store.repository.get(organizer.id).version == 2


def test_each_waiting_save_is_woken_once(fresh_ledger: Ledger) -> None:
    """Saves queued behind a commit in flight sleep until their own group is
    done: the finished group wakes its callers and hands the lead to the
    next caller, never every sleeper (which would wake the callers still
    queued, each to go back to sleep)."""
    recorder = fresh_ledger.store.recorder
    assert isinstance(recorder, LedgerRecorder)
    first_commit, release = threading.Event(), threading.Event()
    commits: list[int] = []
    original = recorder._insert_now

    def gated(events, **kwargs):  # type: ignore[no-untyped-def]
        commits.append(len(events))
        if len(commits) == 1:
            first_commit.set()
            assert release.wait(10)
        return original(events, **kwargs)

    recorder._insert_now = gated  # type: ignore[method-assign,assignment]

    def save(_: int) -> None:
        fresh_ledger.store.save(Organizer.register(id=uuid.uuid4(), name="x", country="US", plan_size=5))

    with ThreadPoolExecutor(max_workers=7) as pool:
        leader = pool.submit(save, 0)
        assert first_commit.wait(10)
        followers = [pool.submit(save, i) for i in range(1, 7)]
        deadline = time.monotonic() + 10
        while len(recorder._group_queue) < 6:  # all six queued behind the commit in flight
            assert time.monotonic() < deadline
            time.sleep(0.001)
        release.set()
        for future in [leader, *followers]:
            future.result(timeout=10)
    assert commits == [1, 6]  # the six queued saves shared the next commit
    # One wake-up each: the next leader (handed the lead), the five others (done).
    assert recorder.group_wakeups == 6
    assert event_log.head(fresh_ledger.store) == 7
    assert not recorder._group_leader and not recorder._group_queue
