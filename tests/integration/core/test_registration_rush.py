"""A registration rush on one event (issue 17): many threads in two ledgers (as
two API processes would be) registering for one event at once.  Sales are
group-committed per event (``ledger.sales_batch``); whatever the batching,
exactly the capacity is sold, every caller gets its own answer, nobody sees a
version conflict, each registration keeps its caller's actor, and a request
repeated under the same derived id creates one registration."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg

from ledger import event_log
from ledger.actor import acting_as
from ledger.domain.registration import Registration
from ledger.errors import CapacityExhausted
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
