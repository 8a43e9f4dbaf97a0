"""A sale's draft of the cached event (``ledger.aggregate_cache``): it reads
the cached containers through copy-on-write layers, so what the sale changes
never reaches the cached event, and drafting costs the same whatever the
event's size."""

from __future__ import annotations

import json
import random
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from ledger.aggregate_cache import (
    DictLayer,
    LedgerRepository,
    ListLayer,
    _merge_draft,
    copy_aggregate,
    draft_aggregate,
)
from ledger.domain.paid_event import PaidEvent
from ledger.errors import CapacityExhausted

NOW = datetime(2037, 11, 1, tzinfo=UTC)
UNTIL = NOW + timedelta(minutes=15)


def _event(holds: int) -> PaidEvent:
    event = PaidEvent.create(
        id=uuid.uuid4(), organizer_id=str(uuid.uuid4()), title="T", description="", timezone="UTC",
        permanent=False, sessions=[{"id": "s1", "starts_at": "2037-12-02T10:00:00+00:00"}],
        price_minor=1000, currency="USD", provider="manual", connection_id=None,
    )
    for i in range(holds):
        event.hold_seat(f"r{i}", capacity=holds + 100, now=NOW, until=UNTIL)
    if holds:
        event.sell_seat("r0", capacity=holds + 100, now=NOW)
    event.collect_events()
    return event


def test_a_dict_layer_behaves_as_a_copy_and_leaves_its_base_alone() -> None:
    rng = random.Random(7)
    for _ in range(200):
        base = {k: rng.randrange(9) for k in rng.sample(range(12), rng.randrange(8))}
        frozen = dict(base)
        layer, copy = DictLayer(base), dict(base)
        for _ in range(rng.randrange(30)):
            key, op = rng.randrange(12), rng.randrange(4)
            if op == 0:
                layer[key] = copy[key] = rng.randrange(9)
            elif op == 1:
                assert layer.pop(key, None) == copy.pop(key, None)
                with pytest.raises(KeyError):
                    del layer[key]
            elif op == 2:
                assert layer.setdefault(key, 5) == copy.setdefault(key, 5)
            else:
                assert layer.get(key) == copy.get(key) and (key in layer) == (key in copy)
            assert len(layer) == len(copy) and dict(layer.items()) == copy
            assert list(layer) == list(copy)  # a dict's order, too
        assert base == frozen
        layer.merge_into_base()
        assert base == copy and list(base) == list(copy)


def test_a_list_layer_only_grows_and_leaves_its_base_alone() -> None:
    base = ["a", "b"]
    layer = ListLayer(base)
    layer.append("c")
    assert list(layer) == ["a", "b", "c"] and layer == ["a", "b", "c"] and len(layer) == 3
    assert "c" in layer and "a" in layer and "z" not in layer and layer[-1] == "c" and layer[0] == "a"
    assert base == ["a", "b"]
    with pytest.raises(AttributeError):
        layer.remove("a")  # type: ignore[attr-defined]


def test_a_layer_never_serializes_as_a_partial_dict() -> None:
    with pytest.raises(TypeError):
        json.dumps(DictLayer({"a": 1}))


def test_a_sale_on_the_draft_never_changes_the_cached_event() -> None:
    cached = _event(5)
    before = copy_aggregate(cached)
    draft = draft_aggregate(cached)
    assert draft.version == cached.version and draft.seats_left(10, NOW) == cached.seats_left(10, NOW)
    draft.hold_seat("new", capacity=10, now=NOW, until=UNTIL)
    draft.hold_seat("r1", capacity=10, now=NOW, until=UNTIL + timedelta(minutes=1))  # a new expiry
    assert draft.holds["new"] == UNTIL.isoformat() and "new" in draft.registrations
    assert draft.first_held["new"] == UNTIL.isoformat() and len(draft.holds) == 6
    assert [e.originator_version for e in draft.collect_events()] == [cached.version + 1, cached.version + 2]
    for name in ("holds", "sold", "registrations", "_first_held", "sessions"):
        assert getattr(cached, name) == getattr(before, name), name
    assert cached.version == before.version and cached.collect_events() == []


def test_the_draft_refuses_what_the_cached_event_would_refuse() -> None:
    cached = _event(5)
    draft = draft_aggregate(cached)
    draft.hold_seat("x", capacity=6, now=NOW, until=UNTIL)
    with pytest.raises(CapacityExhausted):
        draft.hold_seat("y", capacity=6, now=NOW, until=UNTIL)


def test_drafting_costs_the_same_for_ten_holds_as_for_twenty_thousand() -> None:
    """The old copy grew with the event (every hold copied on every sale);
    a draft shares the cached containers and allocates the same few objects."""

    def allocated(event: PaidEvent) -> int:
        tracemalloc.start()
        try:
            draft = draft_aggregate(event)
            draft.hold_seat(str(uuid.uuid4()), capacity=10**6, now=NOW, until=UNTIL)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, large = _event(10), _event(20_000)
    assert draft_aggregate(large).holds.base is large.holds
    assert allocated(large) < allocated(small) + 4_000


def test_a_merged_draft_is_the_event_its_events_make() -> None:
    """After the commit the cache adopts the draft's state instead of
    running the events again: the same state either way."""
    cached = _event(5)
    replayed = copy_aggregate(cached)
    draft = draft_aggregate(cached)
    draft.hold_seat("new", capacity=10, now=NOW, until=UNTIL)
    draft.hold_seat("r2", capacity=10, now=NOW, until=UNTIL + timedelta(minutes=3))
    events = draft.collect_events()
    for event in events:
        event.mutate(replayed)
    assert _merge_draft(cached, draft)
    assert vars(cached).keys() == vars(replayed).keys()
    for name, value in vars(replayed).items():
        assert vars(cached)[name] == value and type(vars(cached)[name]) is type(value), name
    assert list(cached.holds) == list(replayed.holds)


def test_a_draft_of_another_instance_is_never_merged() -> None:
    cached, other = _event(2), _event(2)
    draft = draft_aggregate(other)
    draft.hold_seat("new", capacity=10, now=NOW, until=UNTIL)
    before = copy_aggregate(cached)
    assert not _merge_draft(cached, draft)
    assert cached.holds == before.holds and cached.version == before.version


def test_drafting_holds_the_lock_inside_the_with_and_gives_it_back_after_an_error() -> None:
    repository = LedgerRepository(cast(Any, None), cache_maxsize=10)  # drafting needs no store
    event = _event(3)
    with pytest.raises(CapacityExhausted):
        with repository.drafting(event) as draft:
            assert draft is not event and isinstance(draft.holds, DictLayer)
            lock = repository._fastforward_users[event.id][0]
            assert lock.locked()
            draft.hold_seat("r9", capacity=3, now=NOW, until=UNTIL)  # full: refused
    assert not lock.locked() and event.id not in repository._fastforward_users
    with repository.drafting(event) as draft:
        draft.hold_seat("r9", capacity=4, now=NOW, until=UNTIL)
    assert "r9" in draft.holds and "r9" not in event.holds and repository._fastforward_users == {}
