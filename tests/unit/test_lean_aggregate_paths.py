"""The sale's lean paths make exactly what the library's general ones make:
``Registration.register`` (no ``_create``) the same aggregate and pending
``Registered``, and ``apply_events`` (no Protocol isinstance per event) the
same state as ``project_aggregate`` -- refusing an event out of sequence as
it does."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from eventsourcing.application import project_aggregate
from eventsourcing.domain import OriginatorVersionError
from eventsourcing.utils import get_topic

from ledger.aggregate_cache import apply_events, copy_aggregate
from ledger.domain.paid_event import PaidEvent
from ledger.domain.registration import Registration

NOW = datetime(2037, 11, 1, tzinfo=UTC)
FIELDS: dict[str, Any] = {
    "event_id": "e", "organizer_id": "o", "name": "Ada", "email": "ada@example.com", "fields": {"a": "b"},
    "language": None, "price_minor": 1000, "currency": "USD", "provider": "manual",
}


def test_register_makes_what_create_makes() -> None:
    rid = uuid.uuid4()
    lean = Registration.register(id=rid, **FIELDS)
    general = Registration._create(Registration.Registered, id=rid, **FIELDS)
    (mine,), (theirs,) = lean.collect_events(), general.collect_events()
    assert type(mine) is type(theirs) and vars(mine)["originator_topic"] == get_topic(Registration)
    stamp = mine.timestamp
    object.__setattr__(mine, "timestamp", theirs.timestamp)
    assert vars(mine) == vars(theirs)
    state, expected = vars(lean), vars(general)
    assert state["_created_on"] == state["_modified_on"] == stamp  # from the one event
    for name in ("_created_on", "_modified_on"):
        state[name] = expected[name]
    assert state == expected and list(state) == list(expected)


def test_register_refuses_an_id_that_is_not_a_uuid() -> None:
    with pytest.raises(TypeError):
        Registration.register(id="r1", **FIELDS)  # type: ignore[arg-type]


def _event_with_history() -> tuple[PaidEvent, list[Any]]:
    event = PaidEvent.create(
        id=uuid.uuid4(), organizer_id="o", title="T", description="", timezone="UTC", permanent=False,
        sessions=[{"id": "s1", "starts_at": "2037-12-02T10:00:00+00:00"}], price_minor=1000, currency="USD",
        provider="manual", connection_id=None,
    )
    for i in range(3):
        event.hold_seat(f"r{i}", capacity=5, now=NOW, until=NOW + timedelta(minutes=15))
    event.sell_seat("r1", capacity=5, now=NOW)
    event.release_seat("r2", "expired")
    return event, list(event.collect_events())


def test_apply_events_makes_what_project_aggregate_makes() -> None:
    _, events = _event_with_history()
    lean, general = apply_events(None, events), project_aggregate(None, events)
    assert vars(lean) == vars(general)
    start = apply_events(None, events[:2])
    again = project_aggregate(copy_aggregate(start), events[2:])
    assert vars(apply_events(start, events[2:])) == vars(again)


def test_apply_events_refuses_an_event_out_of_sequence() -> None:
    _, events = _event_with_history()
    start = apply_events(None, events[:2])
    with pytest.raises(OriginatorVersionError):
        apply_events(start, events[3:])
