"""A registration rush on one event (issue 17): many threads in two ledgers (as
two API processes would be) registering for one event at once.  Sales are
group-committed per event (``ledger.sales_batch``); whatever the batching,
exactly the capacity is sold, every caller gets its own answer, nobody sees a
version conflict, each registration keeps its caller's actor, and a request
repeated under the same derived id creates one registration."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import cast

import psycopg

from ledger import event_log
from ledger.actor import acting_as
from ledger.container import Ledger
from ledger.domain.paid_event import PaidEvent
from ledger.domain.registration import Registration
from ledger.errors import CapacityExhausted
from ledger.sales_batch import Decision, Sale, SaleRead
from tests.support.manual_event import manual_event
from tests.support.postgres import TestServer
from tests.support.two_ledgers import two_ledgers


def test_rush_of_400_on_300_seats_through_two_ledgers(pg_server: TestServer, tmp_path: Path) -> None:
    url = pg_server.new_database()
    with two_ledgers(url, tmp_path, pool_size=16) as (a, b):
        event_id = manual_event(a, 300)[1]

        def attempt(i: int) -> tuple[int, str]:
            ledger = a if i % 2 else b
            with acting_as(f"test:{i}"):
                try:
                    reg = ledger.service.register_participant(
                        event_id, name=f"p{i}", email=f"p{i}@example.com", fields={})
                except CapacityExhausted:
                    return i, "refused"
            return i, str(reg.id)

        with ThreadPoolExecutor(max_workers=48) as pool:
            outcomes = dict(pool.map(attempt, range(400)))
        assert len(outcomes) == 400  # every caller answered (a VersionConflict would have raised)
        sold = {i: rid for i, rid in outcomes.items() if rid != "refused"}
        assert len(sold) == 300 and len(set(sold.values())) == 300
        event = b.service.event(event_id)
        assert set(event.holds) == set(sold.values()) and len(event.registrations) == 300
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT count(*) FROM ledger_events WHERE topic LIKE '%Registration.Registered'"
                               ).fetchone()
        assert row is not None and row[0] == 300
        # sales were batched: fewer committed batches than sales, in each process
        for ledger in (a, b):
            assert 0 < ledger.service._sales.batches < ledger.service._sales.sales
        # each registration's events carry the actor of the request that made it
        for i, rid in list(sold.items())[:20]:
            [created] = event_log.read_aggregate(a.store, rid, after=0, limit=10)
            assert created.actor == f"test:{i}"
        holds = {item.data["registration_id"]: item.actor
                 for item in event_log.read_aggregate(a.store, event_id, after=0, limit=1000)
                 if item.type.endswith("SeatHeld")}
        assert all(holds[rid] == f"test:{i}" for i, rid in sold.items())


def test_the_same_derived_id_at_once_creates_one_registration(pg_server: TestServer, tmp_path: Path) -> None:
    """Sixteen concurrent repeats of one keyed request (one derived id) among
    other registrations: one registration, one seat, the same answer for all."""
    url = pg_server.new_database()
    with two_ledgers(url, tmp_path, pool_size=16) as (a, b):
        event_id = manual_event(a, 100)[1]
        derived = uuid.uuid4()

        def attempt(i: int) -> Registration:
            ledger = a if i % 2 else b
            return ledger.service.register_participant(
                event_id, name="Ada" if i % 3 == 0 else f"p{i}",
                email="ada@example.com" if i % 3 == 0 else f"p{i}@example.com", fields={},
                new_id=derived if i % 3 == 0 else None)

        with ThreadPoolExecutor(max_workers=32) as pool:
            results = list(pool.map(attempt, range(48)))
        repeats = {str(r.id) for i, r in enumerate(results) if i % 3 == 0}
        assert repeats == {str(derived)}
        event = a.service.event(event_id)
        assert len(event.holds) == 48 - 16 + 1 and event.registrations.count(str(derived)) == 1


def test_each_waiting_sale_is_woken_once(fresh_ledger: Ledger) -> None:
    """Sales queued behind a batch in flight sleep until their own batch is
    done: a finished batch wakes its sellers and hands the lead to the next
    one queued, never every seller of the event (each woken only to sleep
    again).  A sale sharing a dedupe key with one taken waits for a later
    batch, and is woken once too."""
    service = fresh_ledger.service
    event_id = manual_event(fresh_ledger, 10)[1]
    key = uuid.UUID(event_id)
    batcher = service._sales
    first_batch, release = threading.Event(), threading.Event()
    batches: list[list[int]] = []

    def load(fresh: bool) -> SaleRead:
        return SaleRead(*service._event_and_capacity(event_id, copy=False))

    def seller(i: int) -> Sale:
        def sale(event: PaidEvent, capacity: int, recheck: bool) -> Decision[int]:
            while len(batches) <= batcher.batches:  # counted once the batch is done
                batches.append([])
            batches[batcher.batches].append(i)
            if i == 0:
                first_batch.set()
                assert release.wait(10)
            return Decision(i)  # decides without a change: nothing to save
        return sale

    def sell(i: int) -> int:
        return cast(int, batcher.sell(key, load, seller(i), dedupe=("same" if i in (1, 6) else i,)))

    with ThreadPoolExecutor(max_workers=7) as pool:
        leader = pool.submit(sell, 0)
        assert first_batch.wait(10)
        followers = [pool.submit(sell, i) for i in range(1, 7)]
        deadline = time.monotonic() + 10
        while len(batcher._lanes[key].queue) < 6:  # all six queued behind the batch in flight
            assert time.monotonic() < deadline
            time.sleep(0.001)
        release.set()
        assert [future.result(timeout=10) for future in [leader, *followers]] == list(range(7))
    assert batches == [[0], [1, 2, 3, 4, 5], [6]]  # 6 shares its key with 1: the batch after
    # The lead handed on twice (to 1, then 6), and 2-5 woken once when done.
    assert batcher.wakeups == 6
    assert key not in batcher._lanes  # the lane is dropped with its last seller


def test_a_repeated_address_in_a_batch_rechecks_only_its_own_sale(fresh_ledger: Ledger) -> None:
    """A person who submits the sign-up twice while others register: the
    repeated address's claim fails the whole batch's save.  The re-run asks
    once which ids and addresses are already recorded, and only that sale
    looks itself up (answered with the first registration); the seven others
    are decided again without a query each (two per sale before)."""
    service = fresh_ledger.service
    event_id = manual_event(fresh_ledger, 50)[1]
    key = uuid.UUID(event_id)
    batcher = service._sales
    earlier = service.register_participant(event_id, name="Ada", email="ada@example.com", fields={})
    holding, release = threading.Event(), threading.Event()

    def hold(event: PaidEvent, capacity: int, recheck: bool) -> Decision[None]:
        holding.set()  # the lane is busy: the sales below queue into one batch
        assert release.wait(10)
        return Decision(None)

    emails = [f"p{i}@example.com" for i in range(7)] + [" ADA@Example.com "]
    with ThreadPoolExecutor(max_workers=9) as pool:
        first = pool.submit(batcher.sell, key, lambda fresh: SaleRead(*service._event_and_capacity(event_id, copy=False)), hold,
                            dedupe=("hold",))
        assert holding.wait(10)
        futures = [pool.submit(service.register_participant, event_id, name="P", email=email, fields={})
                   for email in emails]
        deadline = time.monotonic() + 10
        while len(batcher._lanes[key].queue) < len(emails):
            assert time.monotonic() < deadline
            time.sleep(0.001)
        release.set()
        results = [future.result(timeout=30) for future in futures]
    assert first.result(timeout=10) is None
    assert results[-1].id == earlier.id  # the repeat: answered with the first registration
    new_ids = {str(r.id) for r in results[:-1]}
    assert len(new_ids) == 7 and str(earlier.id) not in new_ids
    assert set(service.event(event_id).holds) == new_ids | {str(earlier.id)}
    assert batcher.rechecked == 1  # only the repeated address looked itself up on the re-run
