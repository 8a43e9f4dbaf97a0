"""``PaidEvent.hold_seat`` triggers its ``SeatHeld`` without the decorated
method's argument handling: the event, its stored form and the state it
leaves must be exactly what calling ``_seat_held`` makes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from eventsourcing.persistence import DatetimeAsISO, JSONTranscoder
from eventsourcing.utils import get_topic

from ledger.domain.paid_event import PaidEvent

NOW = datetime(2037, 11, 1, tzinfo=UTC)


def _event(event_id: uuid.UUID) -> PaidEvent:
    event = PaidEvent.create(
        id=event_id, organizer_id="o", title="T", description="", timezone="UTC", permanent=False,
        sessions=[], price_minor=1000, currency="USD", provider="manual", connection_id=None,
    )
    event.collect_events()
    return event


def test_hold_seat_makes_what_the_decorated_mutator_makes() -> None:
    event_id = uuid.uuid4()
    held, called = _event(event_id), _event(event_id)
    until = NOW + timedelta(minutes=15)
    held.hold_seat("r1", capacity=5, now=NOW, until=until)
    called._seat_held(registration_id="r1", expires_at=until.isoformat())
    (mine,), (theirs,) = held.collect_events(), called.collect_events()
    assert type(mine) is type(theirs) and get_topic(type(mine)) == "ledger.domain.paid_event:PaidEvent.SeatHeld"
    object.__setattr__(mine, "timestamp", theirs.timestamp)
    assert list(vars(mine).items()) == list(vars(theirs).items())
    transcoder = JSONTranscoder()
    transcoder.register(DatetimeAsISO())
    def stored(e: object) -> bytes:
        return transcoder.encode({k: v for k, v in vars(e).items() if not k.startswith("originator_")})

    assert stored(mine) == stored(theirs)
    for name in ("holds", "registrations", "first_held", "version"):
        assert getattr(held, name) == getattr(called, name), name
