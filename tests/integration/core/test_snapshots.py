"""Snapshots of events and organizers (``LedgerStore.snapshotting_intervals``):
taken when a save reaches an interval, from what the command saved (a sale's
draft included), stored off the request's path, equal to the aggregate
rebuilt from its events, read back by a process without a cache -- and never
the reason a committed command fails."""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ledger.aggregate_cache import LedgerRepository
from ledger.container import Ledger
from ledger.domain.organizer import Organizer
from ledger.domain.paid_event import PaidEvent
from tests.support.manual_event import manual_event
from tests.support.postgres import TestServer
from tests.support.two_ledgers import two_ledgers

INTERVAL = 5


def _every(ledger: Ledger, interval: int = INTERVAL) -> None:
    ledger.store.snapshotting_intervals = {PaidEvent: interval, Organizer: 50}  # type: ignore[misc]  # this store only


def _snapshots(ledger: Ledger, event_id: str) -> list[int]:
    assert ledger.store.flush_snapshots()  # stored by the writer's thread
    with psycopg.connect(ledger.database_url) as conn:
        rows = conn.execute("SELECT originator_version FROM ledger_snapshots WHERE originator_id = %s"
                            " ORDER BY originator_version", (event_id,)).fetchall()
    return [int(row[0]) for row in rows]


def _state(aggregate: Any) -> dict[str, Any]:
    return {name: value for name, value in vars(aggregate).items() if name not in ("_pending_events",)}


def _sell(ledger: Ledger, event_id: str, i: int) -> None:
    ledger.service.register_participant(event_id, name="P", email=f"p{i}@example.com", fields={})


def test_a_sale_reaching_the_interval_snapshots_what_it_committed(fresh_ledger: Ledger) -> None:
    _, event_id = manual_event(fresh_ledger, 100)
    _every(fresh_ledger)
    for i in range(12):
        _sell(fresh_ledger, event_id, i)
    versions = _snapshots(fresh_ledger, event_id)
    event = fresh_ledger.service.event(event_id)
    assert versions and all(v % INTERVAL == 0 for v in versions) and max(versions) > event.version - INTERVAL
    snapshot = fresh_ledger.store.snapshots.get(uuid.UUID(event_id), desc=True, limit=1)  # type: ignore[union-attr]
    [taken] = list(snapshot)
    restored = taken.mutate(None)
    rebuilt = fresh_ledger.store.repository.get(uuid.UUID(event_id), version=taken.originator_version,
                                               projector_func=lambda a, events: _replay(events))
    assert _state(restored) == _state(rebuilt)
    assert type(restored.holds) is dict and type(restored.registrations) is list  # no draft's layers stored
    assert len(restored.holds) == taken.originator_version - (event.version - 12)


def _replay(events: Any) -> Any:
    aggregate = None
    for domain_event in events:
        aggregate = domain_event.mutate(aggregate)
    return aggregate


def test_a_process_without_the_cache_reads_the_snapshot_and_what_followed(
    pg_server: TestServer, tmp_path: Path,
) -> None:
    with two_ledgers(pg_server.new_database(), tmp_path) as (a, b):
        _, event_id = manual_event(a, 100)
        _every(a)
        for i in range(13):
            _sell(a, event_id, i)
        assert _snapshots(a, event_id)  # (flushed: stored before b reads)
        repository = b.store.repository
        assert isinstance(repository, LedgerRepository)
        assert _state(b.service.event(event_id)) == _state(a.service.event(event_id))


def test_a_snapshot_that_cannot_be_stored_does_not_fail_the_committed_sale(
    fresh_ledger: Ledger, caplog: pytest.LogCaptureFixture,
) -> None:
    """The database refuses the snapshot (here a trigger; in life a lock
    timeout, a full disk): the sale has committed and is answered as sold.
    Before, the error reached the caller of a committed sale."""
    _, event_id = manual_event(fresh_ledger, 100)
    _every(fresh_ledger, 1)  # every sale is due one
    with psycopg.connect(fresh_ledger.database_url, autocommit=True) as conn:
        conn.execute(f"""
            CREATE FUNCTION refuse_in_this_test() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              IF NEW.originator_id = '{event_id}'::uuid THEN RAISE EXCEPTION 'no snapshots here'; END IF;
              RETURN NEW;
            END $$;
            CREATE TRIGGER refuse_in_this_test BEFORE INSERT ON ledger_snapshots
              FOR EACH ROW EXECUTE FUNCTION refuse_in_this_test()""")
    try:
        with caplog.at_level(logging.WARNING, logger="ledger.application"):
            registration = fresh_ledger.service.register_participant(event_id, name="P", email="p@example.com",
                                                                     fields={})
            assert fresh_ledger.store.flush_snapshots()
        assert str(registration.id) in fresh_ledger.service.event(event_id).holds
        assert any("could not store the snapshot" in r.getMessage() and event_id in r.getMessage()
                   for r in caplog.records)
        assert "p@example.com" not in caplog.text
        assert _snapshots(fresh_ledger, event_id) == []
    finally:
        with psycopg.connect(fresh_ledger.database_url, autocommit=True) as conn:
            conn.execute("DROP TRIGGER refuse_in_this_test ON ledger_snapshots;"
                         " DROP FUNCTION refuse_in_this_test()")


def test_a_slow_snapshot_does_not_hold_up_the_sale_that_took_it(fresh_ledger: Ledger) -> None:
    """Stored by the writer's thread: a sale is answered while its snapshot
    is still being written (here the database takes a second over it)."""
    _, event_id = manual_event(fresh_ledger, 100)
    _every(fresh_ledger, 1)
    with psycopg.connect(fresh_ledger.database_url, autocommit=True) as conn:
        conn.execute(f"""
            CREATE FUNCTION slow_in_this_test() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              IF NEW.originator_id = '{event_id}'::uuid THEN PERFORM pg_sleep(1); END IF;
              RETURN NEW;
            END $$;
            CREATE TRIGGER slow_in_this_test BEFORE INSERT ON ledger_snapshots
              FOR EACH ROW EXECUTE FUNCTION slow_in_this_test()""")
    try:
        started = time.monotonic()
        _sell(fresh_ledger, event_id, 0)
        assert time.monotonic() - started < 0.5
        assert _snapshots(fresh_ledger, event_id) == [fresh_ledger.service.event(event_id).version]
    finally:
        with psycopg.connect(fresh_ledger.database_url, autocommit=True) as conn:
            conn.execute("DROP TRIGGER slow_in_this_test ON ledger_snapshots; DROP FUNCTION slow_in_this_test()")
