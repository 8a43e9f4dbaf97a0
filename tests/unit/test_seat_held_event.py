"""``PaidEvent.hold_seat`` triggers its ``SeatHeld`` without the decorated
method's argument handling: the event, its stored form and the state it
leaves must be exactly what calling ``_seat_held`` makes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from eventsourcing.persistence import DatetimeAsISO, JSONTranscoder
from eventsourcing.utils import get_topic

from ledger.aggregate_cache import draft_aggregate
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


class _CountingList(list[str]):
    """A list that counts the scans ``in`` makes of it."""

    scans = 0

    def __contains__(self, item: object) -> bool:
        self.scans += 1
        return super().__contains__(item)


def test_a_new_hold_does_not_scan_every_registration() -> None:
    """A sale in a 10,000-seat rush must cost what the first did: whether the
    registration is listed is not asked of the list of every registration."""
    event = _event(uuid.uuid4())
    until = NOW + timedelta(minutes=15)
    for i in range(2000):
        event.hold_seat(f"r{i}", capacity=5000, now=NOW, until=until)
    event.collect_events()
    counting = _CountingList(event.registrations)
    event.registrations = counting
    draft = draft_aggregate(event)  # the sale's way: through the draft's layer
    draft.hold_seat("new", capacity=5000, now=NOW, until=until)
    event.hold_seat("new", capacity=5000, now=NOW, until=until)  # the cache's way: the committed event applied
    event.hold_seat("r7", capacity=5000, now=NOW, until=until + timedelta(minutes=1))  # a new expiry only
    assert counting.scans == 0
    assert list(draft.registrations)[-2:] == ["r1999", "new"] and counting[-2:] == ["r1999", "new"]
    assert len(counting) == 2001 and event.first_held["new"] == until.isoformat()


def test_an_event_from_a_snapshot_older_than_first_held_lists_each_registration_once() -> None:
    event = _event(uuid.uuid4())
    until = NOW + timedelta(minutes=15)
    for rid in ("r0", "r1", "r2"):
        event.hold_seat(rid, capacity=5, now=NOW, until=until)
    del vars(event)["_first_held"]  # as such a snapshot loads
    event.release_seat("r1", "expired")
    event.hold_seat("r1", capacity=5, now=NOW, until=until)
    event.hold_seat("r3", capacity=5, now=NOW, until=until)
    event.release_seat("r3", "expired")
    event.hold_seat("r3", capacity=5, now=NOW, until=until + timedelta(minutes=1))
    assert event.registrations == ["r0", "r1", "r2", "r3"]
    assert event.first_held == {"r1": until.isoformat(), "r3": until.isoformat()}
