"""The relay's fast encoding (``workers.relay.MessageEncoder``, reading the
stored JSON straight into the envelope) gives every message byte for byte as
the mapper's path (``encode(to_item(...))``) gives it: every public type,
personal data sealed, erased, stored in clear before sealing, an event stored
at an older class version, transcoded values besides the timestamp, with and
without personal data in the messages."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID, uuid4

import orjson
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic

from ledger import event_log
from ledger.application import LedgerStore
from ledger.container import Ledger
from ledger.database import eventsourcing_env
from ledger.domain.organizer import Organizer
from ledger.domain.registration import Registration
from ledger.proof import queries as proof_queries
from ledger.proof.sealer import Sealer
from ledger.scope import ANYONE
from tests.integration.relay.scenario import busy_event, full_story
from tests.support.kafka import ids_seen, read_topic
from tests.support.relay import RunningRelay, all_items
from workers.broker import EmbeddedBroker
from workers.relay import MessageEncoder, batch_reader, encode


def _legacy_registrations(ledger: Ledger) -> tuple[str, str, str]:
    """Two registrations stored in clear by a store without a keyring (before
    sealing existed), the first erased afterwards; and one stored at class
    version 1 (no ``language``: the mapper's upcaster adds it)."""
    registration = ledger.service.registration(busy_event(ledger, registrations=1)[0])
    old_store = LedgerStore(env=eventsourcing_env(ledger.database_url, pool_size=2))
    try:
        legacy, kept = (Registration.register(
            id=uuid4(), event_id=registration.event_id, organizer_id=registration.organizer_id, name=name,
            email=f"{name}@example.org", fields={"company": "Old Co"}, language=None, price_minor=1000,
            currency="USD", provider="manual",
        ) for name in ("olga", "otto"))
        old_store.save(legacy, kept)
    finally:
        old_store.close()
    ledger.erasures.erase([str(legacy.id)], scope=ANYONE, erasure_id=uuid4())
    v1_id = uuid4()
    state = {
        "timestamp": {"_type_": "datetime_iso", "_data_": "2025-03-01T09:30:00.123456+00:00"},
        "originator_topic": get_topic(Registration), "event_id": registration.event_id,
        "organizer_id": registration.organizer_id, "name": "Vic V1", "email": "vic@example.org", "fields": {},
        "price_minor": 1000, "currency": "USD", "provider": "manual", "actor": "system",
    }
    ledger.store.recorder.insert_events([StoredEvent(
        originator_id=v1_id, originator_version=1, topic=get_topic(Registration.Registered),
        state=orjson.dumps(state),
    )])
    return str(legacy.id), str(kept.id), str(v1_id)


def _more_transcoded_values(ledger: Ledger, organizer_id: str) -> None:
    """A stored event holding transcoded values besides its timestamp (a UUID,
    datetimes nested in a list and a dict): none of today's events does, the
    mapper reads them, so the fast path must show them as the mapper does."""
    version: int = ledger.store.repository.get(UUID(organizer_id)).version
    state = {
        "timestamp": {"_type_": "datetime_iso", "_data_": "2025-03-01T09:30:00+01:00"},
        "plan_size": 200, "ref": {"_type_": "uuid_hex", "_data_": uuid4().hex},
        "when": [{"_type_": "datetime_iso", "_data_": "2025-03-02T00:00:00+00:00"}, {"at": {
            "_type_": "datetime_iso", "_data_": "2025-03-03T10:00:00.000001+00:00"}}],
        "actor": "admin:1",
    }
    ledger.store.recorder.insert_events([StoredEvent(
        originator_id=UUID(organizer_id), originator_version=version + 1, topic=get_topic(Organizer.PlanChanged),
        state=orjson.dumps(state),
    )])


def test_fast_messages_are_the_mappers_byte_for_byte(fresh_ledger: Ledger) -> None:
    ledger = fresh_ledger
    _more_transcoded_values(ledger, full_story(ledger))
    busy_event(ledger, registrations=5)
    _, _, v1_registration = _legacy_registrations(ledger)
    store = ledger.store
    notifications = store.recorder.select_notifications(start=0, limit=10_000)
    hashes = {n.id: f"{n.id:064x}" for n in notifications if n.id % 2}
    event_log.prepare_keys(store, notifications)
    for include_pii in (False, True):
        expected = [encode(event_log.to_item(store, n), include_pii=include_pii, chain_hash=hashes.get(n.id))
                    for n in notifications]
        encoder = MessageEncoder(store, include_pii=include_pii)
        assert encoder.encode(notifications, hashes) == expected
        for size in (1, 7):  # batches of other sizes: each prepares its own keys
            batches = [notifications[i:i + size] for i in range(0, len(notifications), size)]
            assert [m for b in batches for m in encoder.encode(b, hashes)] == expected
        holds_key = encoder.envelopes.prepare(notifications)
        declined = [n for n in notifications if encoder.envelopes.envelope(n, holds_key) is None]
        # Only the event stored at an older class version takes the mapper's path.
        assert [n.originator_id for n in declined] == [UUID(v1_registration)]
    types = {event_log.to_item(store, n).type for n in notifications}
    assert types == {public for public, _ in event_log.PUBLIC_TYPES.values()}


def test_messages_carry_the_chain_hash_of_events_sealed_before_they_were_read(
    relay_ledger: Ledger, start_relay: Callable[..., RunningRelay], kafka_broker: EmbeddedBroker,
) -> None:
    """The relay reads each batch with its chain hashes in one query
    (``batch_reader``): a sealed event's message carries its hash, an event
    the sealer had not reached carries null."""
    ledger = relay_ledger
    full_story(ledger)
    Sealer(ledger.db, ledger.store.recorder, ledger.database_url).catch_up()
    busy_event(ledger, registrations=3)  # not sealed
    with ledger.db.transaction() as conn:
        expected = proof_queries.chain_hashes(conn, range(1, event_log.head(ledger.store) + 1))
    assert 0 < len(expected) < event_log.head(ledger.store)
    batch = batch_reader(ledger, 7)(0)
    assert [n.id for n in batch.notifications] == list(range(1, 8)) and batch.reached == 7
    assert batch.hashes == {p: h for p, h in expected.items() if p <= 7}

    start_relay().wait_published()
    items = all_items(ledger)
    messages = read_topic(kafka_broker.bootstrap, ledger.settings.kafka_topic, until=ids_seen(i.id for i in items))
    assert {m.event["position"]: m.event["hash"] for m in messages} == {
        i.position: expected.get(i.position) for i in items}
