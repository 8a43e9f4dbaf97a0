"""The relay's fast encoding (``workers.relay.MessageEncoder``, reading the
stored JSON straight into the envelope) gives every message byte for byte as
the mapper's path (``encode(to_item(...))``) gives it: every public type,
personal data sealed, erased, stored in clear before sealing, an event stored
at an older class version, transcoded values besides the timestamp, with and
without personal data in the messages."""

from __future__ import annotations

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
from ledger.scope import ANYONE
from tests.integration.relay.scenario import busy_event, full_story
from workers.relay import MessageEncoder, encode


def _legacy_registrations(ledger: Ledger) -> list[str]:
    """A registration stored in clear by a store without a keyring (before
    sealing existed), erased afterwards; and one stored at class version 1
    (no ``language``: the mapper's upcaster adds it)."""
    registration = ledger.service.registration(busy_event(ledger, registrations=1)[0])
    old_store = LedgerStore(env=eventsourcing_env(ledger.database_url, pool_size=2))
    try:
        legacy = Registration.register(
            id=uuid4(), event_id=registration.event_id, organizer_id=registration.organizer_id, name="Olga Old",
            email="olga@example.org", fields={"company": "Old Co"}, language=None, price_minor=1000,
            currency="USD", provider="manual",
        )
        old_store.save(legacy)
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
    return [str(legacy.id), str(v1_id)]


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
    _legacy_registrations(ledger)
    store = ledger.store
    notifications = store.recorder.select_notifications(start=0, limit=10_000)
    event_log.prepare_keys(store, notifications)
    types, fast = set(), 0
    for include_pii in (False, True):
        encoder = MessageEncoder(store, include_pii=include_pii)
        for n, notification in enumerate(notifications):
            chain_hash = None if n % 2 else f"{n:064x}"
            expected = encode(event_log.to_item(store, notification), include_pii=include_pii, chain_hash=chain_hash)
            assert encoder.encode(notification, chain_hash) == expected, notification
            found = encoder.envelopes.envelope(notification, include_pii=include_pii)
            if found is not None:
                types.add(found[0].name)
                fast += 1
            else:  # only the event stored at an older class version takes the mapper's path
                assert b'"language"' not in notification.state and notification.topic.endswith("Registered")
    assert types == {public for public, _ in event_log.PUBLIC_TYPES.values()}
    assert fast == 2 * (len(notifications) - 1)

