"""Histories for the projection tests: small stories through the service (every
rule applied), bulk ones written straight through the store (fast), and a
snapshot of the views to compare builds with."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime
from typing import Any

from psycopg import sql

from ledger.container import Ledger
from ledger.domain.organizer import Organizer
from ledger.domain.paid_event import PaidEvent
from ledger.domain.registration import Registration
from ledger.money import Money
from ledger.scope import ANYONE
from projections import generations
from projections.runner import ProjectionRunner

TABLE_KEYS = {"who_paid": "registration_id", "paid_events": "event_id", "fee_daily": "organizer_id, currency, day",
              "fee_facts": "position", "journal_entries": "position", "journal_lines": "position, line_no",
              "book_accounts": "account_id"}


def organizer_with_event(
    ledger: Ledger, *, price: Money | None = None, plan_size: int = 50, country: str = "US"
) -> tuple[str, str]:
    """A new organizer with a manual provider and one scheduled event."""
    price = price or Money(4900, "USD")
    service = ledger.service
    org = service.register_organizer(name="Org", country=country, plan_size=plan_size)
    service.connect_provider(str(org.id), provider="manual", masked={}, store_secrets=lambda _: None)
    event = service.create_event(
        organizer_id=str(org.id), title="Webinar", description="", sessions=[datetime(2038, 1, 1, tzinfo=UTC)],
        timezone="UTC", permanent=False, price=price, provider="manual",
    )
    return str(org.id), str(event.id)


def paid_registration(ledger: Ledger, event_id: str, n: int, *, pay: bool = True) -> str:
    service = ledger.service
    reg = service.register_participant(event_id, name=f"Person {n}", email=f"p{n}@example.org", fields={})
    if pay:
        service.record_payment(str(reg.id), amount=reg.price, provider="manual", reference=f"pay-{reg.id}")
    return str(reg.id)


def project(ledger: Ledger, batch_size: int = 500) -> int:
    return ProjectionRunner(ledger, batch_size=batch_size).catch_up()


def snapshot(ledger: Ledger) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the active generation's tables, in key order."""
    found: dict[str, list[tuple[Any, ...]]] = {}
    with ledger.db.transaction() as conn:
        active = generations.active(conn)
        assert active is not None
        for table, key in TABLE_KEYS.items():
            query = sql.SQL("SELECT * FROM {} ORDER BY " + key).format(active.table(table))
            found[table] = [tuple(r) for r in conn.execute(query).fetchall()]
    return found


def aggregate_view(ledger: Ledger, registration_id: str) -> dict[str, Any]:
    """What the aggregate itself says, in the view's terms."""
    reg = ledger.service.registration(registration_id, ANYONE)
    return {"status": reg.status, "paid_minor": reg.paid_minor, "refunded_minor": reg.refunded_minor,
            "refund_due_minor": reg.refund_due_minor, "fee_minor": reg.fee_minor,
            "fee_reversed_minor": reg.fee_reversed_minor}


def write_bulk(ledger: Ledger, registrations: int, *, seed: int = 1, chunk: int = 2000) -> int:
    """About ``5 * registrations`` valid events written in big transactions the
    way the recorder writes them (table lock, NOTIFY), for volume tests."""
    rng = random.Random(seed)
    store = ledger.store
    org = Organizer.register(id=uuid.uuid4(), name="Bulk", country="US", plan_size=1_000_000)
    event = PaidEvent.create(
        id=uuid.uuid4(), organizer_id=str(org.id), title="Bulk", description="", timezone="UTC",
        permanent=False, sessions=[{"id": "s1", "starts_at": "2038-01-01T10:00:00+00:00"}],
        price_minor=1010, currency="PLN", provider="manual", connection_id=None,
    )
    pending: list[Any] = [*org.collect_events(), *event.collect_events()]
    written = 0

    def flush() -> None:
        nonlocal pending, written
        stored = [store.mapper.to_stored_event(e) for e in pending]
        table = store.recorder.events_table_name  # type: ignore[attr-defined]
        with ledger.db.transaction() as conn:
            conn.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
            with conn.cursor().copy(
                f"COPY {table} (originator_id, originator_version, topic, state) FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.set_types(["uuid", "int8", "text", "bytea"])
                for e in stored:
                    copy.write_row((e.originator_id, e.originator_version, e.topic, e.state))
            # The registrations' data keys, inserted as the recorder does (R24).
            keyring = store.keyring
            for rid, wrapped in keyring.pending_rows(e.originator_id for e in stored) if keyring else []:
                conn.execute("INSERT INTO personal_data_keys (registration_id, wrapped_key) VALUES (%s, %s)",
                             (rid, wrapped))
            conn.execute(f"NOTIFY {store.recorder.channel_name}")  # type: ignore[attr-defined]
        if store.keyring is not None:
            store.keyring.committed(e.originator_id for e in stored)
        written += len(stored)
        pending = []

    for n in range(registrations):
        rid = uuid.uuid4()
        reg = Registration.register(
            id=rid, event_id=str(event.id), organizer_id=str(org.id), name=f"Bulk {n}",
            email=f"b{n}@example.org", fields={}, language=None, price_minor=1010, currency="PLN",
            provider="manual",
        )
        event._seat_held(registration_id=str(rid), expires_at="2099-01-01T00:00:00+00:00")
        if rng.random() < 0.85:
            reg.record_payment(Money(1010, "PLN"), "manual", f"b{n}", seat_granted=True)
            event._seat_sold(registration_id=str(rid))
            roll = rng.random()
            if roll < 0.1:
                reg.record_refund(Money(rng.randint(1, 1010), "PLN"), f"r{n}")
            elif roll < 0.3:
                reg.confirm()
        pending += [*reg.collect_events(), *event.collect_events()]
        if len(pending) >= chunk:
            flush()
    if pending:
        flush()
    return written
