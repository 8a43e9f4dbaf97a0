"""The event store on real PostgreSQL: append-only, versioned, upcast."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest

from ledger import event_log
from ledger.container import Ledger
from ledger.domain.registration import Registration


def test_stored_events_cannot_be_updated_or_deleted(fresh_ledger: Ledger) -> None:
    fresh_ledger.service.register_organizer(name="O", country="US", plan_size=5)
    with psycopg.connect(fresh_ledger.database_url, autocommit=True) as conn:
        for sql in ("UPDATE ledger_events SET topic = 'x'", "DELETE FROM ledger_events",
                    "TRUNCATE ledger_events"):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(sql)
        assert conn.execute("SELECT count(*) FROM ledger_events").fetchone() == (1,)


def test_a_v1_registration_event_is_upcast_when_read(fresh_ledger: Ledger) -> None:
    """Schema evolution: an event written before ``language`` existed (class
    version 1) reads back with ``language = None``."""
    store = fresh_ledger.store
    rid = uuid.uuid4()
    registration = Registration.register(
        id=rid, event_id="e", organizer_id="o", name="N", email="n@x.org", fields={}, language="pl",
        price_minor=100, currency="PLN", provider="manual",
    )
    [pending] = registration.collect_events()
    stored = store.mapper.to_stored_event(pending)
    state = json.loads(stored.state)
    del state["language"]
    state.pop("class_version")
    stored = type(stored)(originator_id=stored.originator_id, originator_version=stored.originator_version,
                          topic=stored.topic, state=json.dumps(state).encode())
    store.recorder.insert_events([stored])
    assert store.repository.get(rid).language is None
    [item] = event_log.read(store, after=0, limit=10)
    assert item.type == "ParticipantRegistered" and item.data["language"] is None and item.schema_version == 3


def test_event_log_items_carry_the_audit_fields(fresh_ledger: Ledger) -> None:
    org = fresh_ledger.service.register_organizer(name="O", country="US", plan_size=5)
    fresh_ledger.service.change_plan(str(org.id), 7)
    items = event_log.read(fresh_ledger.store, after=0, limit=10)
    assert [i.type for i in items] == ["OrganizerRegistered", "PlanChanged"]
    assert [i.position for i in items] == [1, 2]
    assert items[1].data == {"plan_size": 7, "previous_plan_size": 5}
    assert all(i.organizer_id == str(org.id) for i in items)
    assert items[0].id == event_log.event_id(org.id, 1)


def test_organizer_id_is_resolved_for_events_that_do_not_name_it(fresh_ledger: Ledger) -> None:
    from datetime import UTC, datetime

    from ledger.money import Money

    service = fresh_ledger.service
    org = service.register_organizer(name="O", country="US", plan_size=5)
    service.connect_provider(str(org.id), provider="manual", masked={}, store_secrets=lambda cid: None)
    event = service.create_event(organizer_id=str(org.id), title="T", description="", timezone="UTC",
                                 sessions=[datetime(2038, 1, 1, tzinfo=UTC)], permanent=False,
                                 price=Money.parse("5.00", "USD"), provider="manual")
    service.edit_event(str(event.id), {"title": "U"}, scope=service_scope())
    event_log._organizer_cache.clear()  # as in a fresh process reading from the middle
    [edited] = event_log.read(fresh_ledger.store, after=3, limit=1)
    assert edited.type == "EventDetailsEdited" and edited.organizer_id == str(org.id)


def service_scope():  # type: ignore[no-untyped-def]
    from ledger.scope import ANYONE

    return ANYONE


def test_a_very_large_atomic_save_completes(fresh_ledger: Ledger) -> None:
    """Regression: ~1,500+ events in one pipelined save deadlocked psycopg while
    holding the table lock (it would stop every writer).  Cancelling an event
    with thousands of registrations is such a save."""
    import threading

    from ledger.domain.organizer import Organizer

    aggregates = [Organizer.register(id=uuid.uuid4(), name="x", country="US", plan_size=5) for _ in range(3000)]
    done = threading.Event()

    def save() -> None:
        fresh_ledger.store.save(*aggregates)
        done.set()

    threading.Thread(target=save, daemon=True).start()
    assert done.wait(30), "the save hung"
    assert event_log.head(fresh_ledger.store) == 3000
    assert [i.position for i in event_log.read(fresh_ledger.store, after=2998, limit=5)] == [2999, 3000]
