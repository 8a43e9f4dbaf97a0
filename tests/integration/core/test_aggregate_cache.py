"""The store's aggregate cache (``ledger.aggregate_cache``) on a real store:
every read is the current state (also after another ledger -- another process
-- wrote), every reader gets its own object, and what a command does to its
object never reaches the cache unless saved."""

from __future__ import annotations

import contextlib
import threading
import tracemalloc
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from entrypoints.bootstrap import Ledger, bootstrap
from ledger.aggregate_cache import LedgerRepository
from ledger.errors import CapacityExhausted
from tests.support.manual_event import manual_event
from tests.support.postgres import TestServer
from tests.support.settings import make_settings
from tests.support.two_ledgers import two_ledgers

NOW = datetime(2037, 11, 1, tzinfo=UTC)




def test_readers_get_their_own_copies(pg_server: TestServer, tmp_path: Path) -> None:
    ledger = bootstrap(make_settings(tmp_path), url=pg_server.new_database())
    try:
        assert isinstance(ledger.store.repository, LedgerRepository)
        _, event_id = manual_event(ledger)
        first, second = ledger.service.event(event_id), ledger.service.event(event_id)
        assert first is not second and first.holds is not second.holds
        first.hold_seat("unsaved", capacity=10, now=NOW, until=NOW + timedelta(minutes=5))
        assert "unsaved" not in ledger.service.event(event_id).holds  # never saved: never seen

        with ThreadPoolExecutor(max_workers=8) as pool:
            copies = list(pool.map(lambda _: ledger.service.event(event_id), range(32)))
        assert len({id(c.holds) for c in copies}) == 32  # all alive: every reader its own dict
    finally:
        ledger.close()


def test_a_plan_change_in_another_process_limits_the_next_sale(pg_server: TestServer, tmp_path: Path) -> None:
    """``capacity_of`` reads the cached organizer in place: it must still see
    a plan lowered by another ledger before the very next sale."""
    url = pg_server.new_database()
    with two_ledgers(url, tmp_path) as (a, b):
        org_id, event_id = manual_event(a, plan=10)
        a.service.register_participant(event_id, name="p0", email="p0@example.com", fields={})
        assert a.service.capacity_of(a.service.event(event_id)) == 10  # now cached in a
        b.service.change_plan(org_id, 1)
        assert a.service.capacity_of(a.service.event(event_id)) == 1
        with pytest.raises(CapacityExhausted):
            a.service.register_participant(event_id, name="p1", email="p1@example.com", fields={})


def _sale_allocations(ledger: Ledger, event_id: str, email: str) -> int:
    ledger.service.event(event_id)  # cached
    tracemalloc.start()
    try:
        ledger.service.register_participant(event_id, name="P", email=email, fields={})
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_sale_costs_the_same_on_a_full_event(pg_server: TestServer, tmp_path: Path) -> None:
    """A sale used to copy the cached event, every hold of it, on every
    sale; it now decides on a draft that shares them.  What it allocates
    does not grow with the holds the event has."""
    ledger = bootstrap(make_settings(tmp_path), url=pg_server.new_database())
    try:
        _, small_id = manual_event(ledger, plan=100_000)
        _, large_id = manual_event(ledger, plan=100_000)
        large = ledger.service.event(large_id)
        for _ in range(3_000):
            large.hold_seat(str(uuid.uuid4()), capacity=100_000, now=NOW, until=NOW + timedelta(days=9_000))
        ledger.store.save(large)
        for i in range(3):  # warm both paths
            _sale_allocations(ledger, small_id, f"w{i}@example.com")
            _sale_allocations(ledger, large_id, f"w{i}@example.com")
        small_cost = min(_sale_allocations(ledger, small_id, f"s{i}@example.com") for i in range(3))
        large_cost = min(_sale_allocations(ledger, large_id, f"s{i}@example.com") for i in range(3))
        assert len(ledger.service.event(large_id).holds) == 3_006
        assert large_cost < small_cost + 40_000, (small_cost, large_cost)
    finally:
        ledger.close()


def test_a_failed_save_leaves_the_cached_event_as_committed(pg_server: TestServer, tmp_path: Path) -> None:
    """Another process claimed the address first: this process's sale held
    a seat on its draft, its save failed on the claim, and the re-run
    answered the first registration.  The cached event never saw the hold."""
    url = pg_server.new_database()
    with two_ledgers(url, tmp_path) as (a, b):
        _, event_id = manual_event(a)
        b.service.event(event_id)  # cached in b
        first = a.service.register_participant(event_id, name="Ada", email="ada@example.com", fields={})
        mine = uuid.uuid4()
        again = b.service.register_participant(event_id, name="Ada", email="ADA@example.com", fields={},
                                               fresh_id=mine)
        assert again.id == first.id
        repository = b.store.repository
        assert isinstance(repository, LedgerRepository) and repository.cache is not None
        cached: Any = repository.cache.get(uuid.UUID(event_id))
        assert str(mine) not in cached.holds and str(mine) not in cached.registrations
        assert list(cached.holds) == [str(first.id)] and cached.version == a.service.event(event_id).version
        assert cached.collect_events() == []


def test_readers_during_batches_see_only_committed_sales(pg_server: TestServer, tmp_path: Path) -> None:
    """Two processes sell the last seats of one event at once (their saves
    conflict, sales are re-decided and some refused) while readers in the
    first keep reading the event: every hold a reader ever sees belongs to
    a registration that was committed, and versions never go backwards."""
    url = pg_server.new_database()
    with two_ledgers(url, tmp_path) as (a, b):
        _, event_id = manual_event(a, plan=30)
        stop = threading.Event()
        seen: set[str] = set()
        backwards: list[tuple[int, int]] = []

        def read() -> None:
            last = 0
            while not stop.is_set():
                event = a.service.event(event_id)
                seen.update(event.holds)
                if event.version < last:
                    backwards.append((last, event.version))
                last = event.version

        def sell(args: tuple[int, str]) -> None:
            n, who = args
            ledger = a if who == "a" else b
            with contextlib.suppress(CapacityExhausted):
                ledger.service.register_participant(event_id, name="P", email=f"{who}{n}@example.com", fields={})

        readers = [threading.Thread(target=read) for _ in range(3)]
        for reader in readers:
            reader.start()
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(sell, [(n, who) for n in range(30) for who in "ab"]))
        stop.set()
        for reader in readers:
            reader.join()
        final = a.service.event(event_id)
        assert len(final.holds) == 30 and backwards == []
        assert seen <= set(final.holds)
        assert a.store.repository.cache is not None
        cached: Any = a.store.repository.cache.get(uuid.UUID(event_id))
        assert set(cached.holds) == set(final.holds)
