"""Trusted reads (ledger.aggregate_cache): a sale decides on its process's
cached event and organizer without asking the database whether they moved,
while its process's saves report that nothing moved them.  What another
process changes meanwhile still counts (R9): the event's next version is
unique, the organizer's version is checked by the save, and a sale refused on
a trusted read is decided again on a fresh one."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import psycopg
import pytest
from eventsourcing.persistence import StoredEvent

from ledger.aggregate_cache import LedgerRepository
from ledger.application import MOVES_LIMIT, LedgerRecorder
from ledger.container import Ledger
from ledger.domain.paid_event import PaidEvent
from ledger.domain.registration import Registration
from ledger.errors import CapacityExhausted
from ledger.money import Money
from tests.support.manual_event import manual_event
from tests.support.postgres import TestServer
from tests.support.two_ledgers import two_ledgers


def _sell(ledger: Ledger, event_id: str, i: int) -> Registration:
    return ledger.service.register_participant(event_id, name="P", email=f"p{i}@example.com", fields={})


def _trusted(ledger: Ledger) -> int:
    repository = ledger.store.repository
    assert isinstance(repository, LedgerRepository)
    return repository.trusted_reads


def test_a_process_alone_sells_from_its_cache(fresh_ledger: Ledger) -> None:
    _, event_id = manual_event(fresh_ledger, 10)
    _sell(fresh_ledger, event_id, 0)
    _sell(fresh_ledger, event_id, 1)  # read once more: now both the event and its organizer are known current
    before = _trusted(fresh_ledger)
    sold = [str(_sell(fresh_ledger, event_id, i).id) for i in range(2, 6)]
    assert _trusted(fresh_ledger) - before == 4
    assert set(sold) <= set(fresh_ledger.service.event(event_id).holds)


def test_a_seat_another_process_took_is_not_sold_twice(pg_server: TestServer, tmp_path: Path) -> None:
    with two_ledgers(pg_server.new_database(), tmp_path) as (a, b):
        _, event_id = manual_event(a, 3)
        _sell(a, event_id, 0)
        _sell(a, event_id, 1)
        _sell(b, event_id, 2)  # the last seat, sold by the other process
        before, conflicts = _trusted(a), a.service._sales.conflicts
        with pytest.raises(CapacityExhausted):
            _sell(a, event_id, 3)  # decided on a's cache (two seats taken), refused by the save, decided again
        assert _trusted(a) == before + 1 and a.service._sales.conflicts == conflicts + 1
        assert len(a.service.event(event_id).holds) == len(b.service.event(event_id).holds) == 3


def test_another_process_s_sales_reach_this_cache_with_this_process_s_next_save(
    pg_server: TestServer, tmp_path: Path,
) -> None:
    """b sells on an event a also sells; a's next save (here on another
    event) brings b's sale with it, so a's next sale on the event needs no
    read and does not conflict."""
    with two_ledgers(pg_server.new_database(), tmp_path) as (a, b):
        _, event_id = manual_event(a, 10)
        _, elsewhere = manual_event(a, 10)
        _sell(a, event_id, 0)
        _sell(a, event_id, 1)
        theirs = str(_sell(b, event_id, 2).id)
        _sell(a, elsewhere, 3)
        _sell(a, elsewhere, 4)
        repository = a.store.repository
        assert isinstance(repository, LedgerRepository) and repository.cache is not None
        cached = repository.cache.get(uuid.UUID(event_id))
        assert isinstance(cached, PaidEvent) and theirs in cached.holds  # applied from the save's report
        before, conflicts = _trusted(a), a.service._sales.conflicts
        mine = str(_sell(a, event_id, 5).id)
        assert _trusted(a) == before + 1 and a.service._sales.conflicts == conflicts  # decided once, saved once
        assert {theirs, mine} <= set(b.service.event(event_id).holds)


def test_a_plan_lowered_by_another_process_limits_the_next_sale(pg_server: TestServer, tmp_path: Path) -> None:
    """The organizer is only read by a sale: without the save's check of its
    version, a's cached plan of 5 would sell a fourth seat of a plan of 3."""
    with two_ledgers(pg_server.new_database(), tmp_path) as (a, b):
        organizer_id, event_id = manual_event(a, 5)
        for i in range(3):
            _sell(a, event_id, i)
        b.service.change_plan(organizer_id, 3)
        before = _trusted(a)
        with pytest.raises(CapacityExhausted):
            _sell(a, event_id, 3)
        assert _trusted(a) == before + 1
        assert len(b.service.event(event_id).holds) == 3


def test_a_seat_another_process_freed_is_sold(pg_server: TestServer, tmp_path: Path) -> None:
    """a's cache says the event is full; b gave a seat back.  A refusal is
    never decided on a trusted read alone."""
    with two_ledgers(pg_server.new_database(), tmp_path) as (a, b):
        _, event_id = manual_event(a, 2)
        first = _sell(a, event_id, 0)
        _sell(a, event_id, 1)
        b.service.release_hold(str(first.id), "test")
        before = _trusted(a)
        third = _sell(a, event_id, 2)
        assert _trusted(a) == before + 1
        assert str(third.id) in b.service.event(event_id).holds


def test_too_much_moved_elsewhere_and_nothing_is_trusted(pg_server: TestServer, tmp_path: Path) -> None:
    with two_ledgers(pg_server.new_database(), tmp_path) as (a, b):
        _, event_id = manual_event(a, 10)
        _sell(a, event_id, 0)
        _sell(a, event_id, 1)
        recorder = b.store.recorder
        assert isinstance(recorder, LedgerRecorder)
        for _ in range(0, MOVES_LIMIT + 1, 250):  # other aggregates, more than a save lists
            recorder.insert_events([StoredEvent(originator_id=uuid.uuid4(), originator_version=1,
                                                topic="tests:Stray", state=b"{}") for _ in range(250)])
        _sell(a, event_id, 2)  # trusted (it is: nothing moved the event); its save reports "too much"
        before = _trusted(a)
        _sell(a, event_id, 3)
        assert _trusted(a) == before  # read from the database again
        _sell(a, event_id, 4)
        assert _trusted(a) == before + 1  # and trusted once read


def test_after_a_pause_nothing_is_trusted_until_read_again(
    pg_server: TestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A process that has not saved for a while knows nothing of what others
    committed meanwhile: its next sales read first (and its next save asks
    for no long report of everything since)."""
    monkeypatch.setattr("ledger.application.MOVES_MAX_AGE", 0.3)
    with two_ledgers(pg_server.new_database(), tmp_path) as (a, b):
        _, event_id = manual_event(a, 10)
        _sell(a, event_id, 0)
        _sell(a, event_id, 1)
        _sell(b, event_id, 2)
        time.sleep(0.5)
        before, conflicts = _trusted(a), a.service._sales.conflicts
        _sell(a, event_id, 3)
        _sell(a, event_id, 4)
        assert _trusted(a) == before and a.service._sales.conflicts == conflicts  # read, not refused
        _sell(a, event_id, 5)
        assert _trusted(a) == before + 1
        assert len(b.service.event(event_id).holds) == 6


def test_this_process_s_other_commands_on_the_event_are_not_taken_for_current(fresh_ledger: Ledger) -> None:
    """A payment moves the event (the seat is sold) through another command's
    save, which no report lists: the next sale reads the event instead of
    deciding on the cached one and conflicting."""
    _, event_id = manual_event(fresh_ledger, 10)
    first = _sell(fresh_ledger, event_id, 0)
    _sell(fresh_ledger, event_id, 1)
    fresh_ledger.service.record_payment(str(first.id), amount=Money(1000, "USD"), provider="manual",
                                        reference="cash")
    conflicts = fresh_ledger.service._sales.conflicts
    _sell(fresh_ledger, event_id, 2)
    _sell(fresh_ledger, event_id, 3)
    assert fresh_ledger.service._sales.conflicts == conflicts
    assert str(first.id) in fresh_ledger.service.event(event_id).sold


def test_an_event_this_process_cannot_apply_never_fails_a_committed_save(
    pg_server: TestServer, tmp_path: Path,
) -> None:
    """Another writer (a newer release, during a rollout) stored an event
    type this process does not know on an event it trusts.  The report of
    a's next save carries it: the save has committed and must be answered as
    such; the event is dropped from the cache and read before its next sale."""
    url = pg_server.new_database()
    with two_ledgers(url, tmp_path) as (a, _):
        _, event_id = manual_event(a, 10)
        _, elsewhere = manual_event(a, 10)
        _sell(a, event_id, 0)
        _sell(a, event_id, 1)
        repository = a.store.repository
        assert isinstance(repository, LedgerRepository) and repository.cache is not None
        version = repository.cache.get(uuid.UUID(event_id)).version
        with psycopg.connect(url) as newer_release:
            newer_release.execute("INSERT INTO ledger_events (originator_id, originator_version, topic, state)"
                                  " VALUES (%s, %s, 'ledger.domain.paid_event:PaidEvent.Unknown', '{}')",
                                  (event_id, version + 1))
        sold = _sell(a, elsewhere, 2)  # its save reports the unknown event: still answered
        assert str(sold.id) in a.service.event(elsewhere).holds
        with pytest.raises(KeyError):
            repository.cache.get(uuid.UUID(event_id))  # dropped, to be read (and refused) like any read of it


def test_a_report_lists_no_aggregate_another_process_created(pg_server: TestServer, tmp_path: Path) -> None:
    """Each sale elsewhere creates a registration, which no cache here can
    hold from before it existed: the report hands on only the events that
    continue an aggregate (the event's seat holds), and those are applied."""
    with two_ledgers(pg_server.new_database(), tmp_path) as (a, b):
        _, event_id = manual_event(a, 10)
        _sell(a, event_id, 0)
        _sell(a, event_id, 1)
        recorder = a.store.recorder
        assert isinstance(recorder, LedgerRecorder) and recorder.on_moves is not None
        reports: list[list[StoredEvent] | None] = []
        apply = recorder.on_moves

        def observed(moves: list[StoredEvent] | None) -> None:
            reports.append(moves)
            apply(moves)

        recorder.on_moves = observed
        theirs = {str(_sell(b, event_id, i).id) for i in (2, 3)}
        _sell(a, event_id, 4)
        moved = [stored for report in reports for stored in report or ()]
        assert [(s.originator_id, s.topic.rsplit(".", 1)[-1]) for s in moved] == [(uuid.UUID(event_id), "SeatHeld")] * 2
        assert theirs <= set(a.service.event(event_id).holds)


def test_every_aggregate_starts_at_the_version_a_report_leaves_out() -> None:
    """The report drops first versions as creations (LedgerRecorder._report_moves):
    true only while no aggregate class starts elsewhere."""
    import importlib
    import pkgutil

    from eventsourcing.domain import BaseAggregate

    import ledger.domain
    from ledger.application import _FIRST_VERSION

    for module in pkgutil.iter_modules(ledger.domain.__path__):
        importlib.import_module(f"ledger.domain.{module.name}")
    classes, pending = [], list(BaseAggregate.__subclasses__())
    while pending:
        cls = pending.pop()
        pending += cls.__subclasses__()
        if cls.__module__.startswith("ledger."):
            classes.append(cls)
    assert {PaidEvent, Registration} <= set(classes)
    assert {cls.__name__: cls.INITIAL_VERSION for cls in classes} == {cls.__name__: _FIRST_VERSION for cls in classes}
