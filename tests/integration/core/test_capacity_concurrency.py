"""R9 under real concurrency: threads in two independent ledgers (as two API
processes would be) against one real PostgreSQL.  No oversell, nothing lost."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from entrypoints.bootstrap import Ledger, bootstrap
from ledger.errors import CapacityExhausted
from ledger.money import Money
from tests.support.manual_event import manual_event
from tests.support.postgres import TestServer
from tests.support.settings import make_settings
from tests.support.two_ledgers import two_ledgers


def test_r9_sixty_parallel_registrations_on_a_plan_of_fifty(pg_server: TestServer, tmp_path: Path) -> None:
    url = pg_server.new_database()
    with two_ledgers(url, tmp_path, pool_size=16) as (a, b):
        event_id = manual_event(a, 50)[1]

        def attempt(i: int) -> str:
            ledger = a if i % 2 else b
            try:
                reg = ledger.service.register_participant(event_id, name=f"p{i}", email=f"p{i}@example.com", fields={})
            except CapacityExhausted:
                return "refused"
            ledger.service.record_payment(str(reg.id), amount=Money.parse("10.00", "USD"),
                                          provider="manual", reference=f"ref-{i}")
            return "paid"

        with ThreadPoolExecutor(max_workers=16) as pool:
            outcomes = list(pool.map(attempt, range(60)))
        assert outcomes.count("paid") == 50 and outcomes.count("refused") == 10
        event = a.service.event(event_id)
        assert len(event.sold) == 50
        assert event.summary(50, datetime.now(UTC))["tickets_left"] == 0


def test_r9_late_payments_after_holds_lapse_are_recorded_and_owed_back(pg_server: TestServer, tmp_path: Path) -> None:
    """60 paying participants for 50 seats: the 10 whose holds lapsed and whose
    seats were taken are still recorded (money is a fact) as refund_due."""
    clock_now = [datetime(2026, 11, 1, tzinfo=UTC)]
    ledger = bootstrap(make_settings(tmp_path), url=pg_server.new_database(), pool_size=16,
                       clock=lambda: clock_now[0])
    try:
        event_id = manual_event(ledger, 50)[1]
        early = [ledger.service.register_participant(event_id, name=f"e{i}", email=f"e{i}@x.org", fields={})
                 for i in range(10)]
        clock_now[0] += timedelta(hours=1)  # the first ten holds lapse
        late = [ledger.service.register_participant(event_id, name=f"l{i}", email=f"l{i}@x.org", fields={})
                for i in range(50)]
        everyone = [str(r.id) for r in early + late]

        def pay(rid: str) -> str:
            reg = ledger.service.record_payment(rid, amount=Money.parse("10.00", "USD"), provider="manual",
                                                reference=f"pay-{rid}")
            return reg.status

        with ThreadPoolExecutor(max_workers=12) as pool:
            statuses = list(pool.map(pay, everyone))
        assert statuses.count("paid") == 50
        assert statuses.count("refund_due") == 10
        owed = [ledger.service.registration(rid) for rid in everyone if ledger.service.registration(rid).status == "refund_due"]
        assert all(r.closed_reason == "capacity_exhausted" and r.refund_due_minor == 1000 for r in owed)
        assert len(ledger.service.event(event_id).sold) == 50
    finally:
        ledger.close()


def test_same_registration_id_twice_concurrently_creates_one(shared_ledger: Ledger) -> None:
    event_id = manual_event(shared_ledger, 10)[1]
    rid = uuid.uuid4()
    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(lambda _: str(shared_ledger.service.register_participant(
            event_id, name="A", email="a@x.org", fields={}, new_id=rid).id), range(8)))
    assert set(ids) == {str(rid)}
    assert shared_ledger.service.event(event_id).seats_taken(datetime.now(UTC)) == 1
