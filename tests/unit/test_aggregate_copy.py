"""The aggregate cache's copy (``ledger.aggregate_cache``) shares nothing
mutable with the cached aggregate: a command mutating its copy never changes
what the next caller reads."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from ledger.aggregate_cache import _copy_value, copy_aggregate
from ledger.domain.organizer import Organizer
from ledger.domain.paid_event import PaidEvent

NOW = datetime(2037, 12, 1, tzinfo=UTC)


def _event() -> PaidEvent:
    event = PaidEvent.create(
        id=uuid.uuid4(), organizer_id=str(uuid.uuid4()), title="T", description="", timezone="UTC",
        permanent=False, sessions=[{"id": "s1", "starts_at": "2037-12-02T10:00:00+00:00"}],
        price_minor=1000, currency="USD", provider="manual", connection_id=None,
    )
    for i in range(5):
        event.hold_seat(f"r{i}", capacity=10, now=NOW, until=NOW + timedelta(minutes=15))
    event.sell_seat("r0", capacity=10, now=NOW)
    event.collect_events()
    return event


def test_a_copy_is_equal_and_independent() -> None:
    cached = _event()
    copy = copy_aggregate(cached)
    assert type(copy) is PaidEvent and vars(copy).keys() == vars(cached).keys()
    assert (copy.id, copy.version, copy.holds, copy.sold, copy.registrations, copy.sessions) == (
        cached.id, cached.version, cached.holds, cached.sold, cached.registrations, cached.sessions)
    copy.hold_seat("r9", capacity=10, now=NOW, until=NOW + timedelta(minutes=15))
    copy.sell_seat("r1", capacity=10, now=NOW)
    copy.release_seat("r2", "rejected")
    copy.reschedule(datetime(2037, 12, 3, 10, tzinfo=UTC), None, now=NOW)
    assert "r9" not in cached.holds and "r9" not in cached.registrations and "r2" in cached.holds
    assert "r1" not in cached.sold
    assert cached.sessions[0]["starts_at"] == "2037-12-02T10:00:00+00:00"
    assert cached.collect_events() == [] and len(copy.collect_events()) == 4


def test_flat_state_holds_only_immutable_values() -> None:
    """``FLAT_STATE`` is copied one level deep: it must stay flat."""
    event = _event()
    for name in PaidEvent.FLAT_STATE:
        value = getattr(event, name)
        items = value.items() if isinstance(value, dict) else enumerate(value)
        assert all(isinstance(v, str | bool) and isinstance(k, str | int) for k, v in items), name


def test_nested_state_is_copied_too() -> None:
    organizer = Organizer.register(id=uuid.uuid4(), name="O", country="US", plan_size=10)
    organizer.connect_provider("c1", "stripe", {"key": "sk_…1234"})
    organizer.collect_events()
    copy = copy_aggregate(organizer)
    copy.connections["c1"]["masked"] = {}
    copy.connections["c2"] = {}
    assert organizer.connections.keys() == {"c1"}
    assert organizer.connections["c1"] != copy.connections["c1"]


def test_a_copied_value_shares_no_container_with_the_original() -> None:
    """``_copy_value`` on the shapes state takes: containers at any depth are
    new, immutable values shared; a dict with a key that is not an immutable
    value is deep-copied whole."""
    when = datetime(2037, 1, 1, tzinfo=UTC)
    original: dict[Any, Any] = {
        "sessions": [{"id": "s1", "starts_at": "2037"}, {"id": "s2", "nested": {"a": [1, {"b": 2}]}}],
        "when": when, "amount": Decimal("1.10"), "ids": ("x", "y"), "mixed": [1, "two", [3]],
        "odd keys": {("t", 1): [1], "plain": {"c": 3}},
    }
    copied = _copy_value(original)
    assert copied == original

    def containers(value: Any) -> list[int]:
        found = [id(value)] if isinstance(value, dict | list) else []
        items = value.values() if isinstance(value, dict) else value if isinstance(value, list | tuple) else ()
        return found + [i for item in items for i in containers(item)]

    assert not set(containers(copied)) & set(containers(original))
    assert copied["when"] is when and copied["ids"] is original["ids"] and copied["amount"] is original["amount"]
    copied["sessions"][1]["nested"]["a"][1]["b"] = 9
    copied["odd keys"][("t", 1)].append(2)
    assert original["sessions"][1]["nested"]["a"][1]["b"] == 2 and original["odd keys"][("t", 1)] == [1]
