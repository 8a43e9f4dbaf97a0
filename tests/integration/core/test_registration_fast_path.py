"""The registration's fast path on a real PostgreSQL (docs/performance.md,
session 4): the save sent as one statement with client-side bound values, the
event and its organizer fast-forwarded by one query, the e-mail claimed
without a look-up first.  Each must keep what the slower path guaranteed."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import pytest
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError, StoredEvent

from entrypoints.bootstrap import Ledger, bootstrap
from ledger.application import LedgerRecorder
from ledger.domain.organizer import Organizer
from ledger.domain.registration import Registration
from ledger.errors import CapacityExhausted
from ledger.registration_emails import EmailClaim
from tests.support.manual_event import manual_event
from tests.support.postgres import TestServer
from tests.support.settings import make_settings
from tests.support.two_ledgers import two_ledgers

#: Text that must survive client-side binding byte for byte: quotes, a
#: backslash, dollar quoting, placeholders, a statement separator, non-ASCII.
AWKWARD = "O'Brien \\ $$x$$ %s %(a)s ; DROP TABLE ledger_events; -- \u00e9\u4e2d\U0001f600 \"q\""




def test_awkward_text_and_bytes_are_stored_exactly(pg_server: TestServer, tmp_path: Path) -> None:
    url = pg_server.new_database()
    # b another process: reads from the database
    with two_ledgers(url, tmp_path) as (a, b):
        _, event_id = manual_event(a)
        made = a.service.register_participant(
            event_id, name=AWKWARD, email="ob@example.com", fields={AWKWARD: AWKWARD}, fresh_id=uuid.uuid4(),
        )
        read = b.service.registration(str(made.id))
        assert (read.name, read.email, read.fields) == (AWKWARD, "ob@example.com", {AWKWARD: AWKWARD})
        organizer = Organizer.register(id=uuid.uuid4(), name=AWKWARD, country="US", plan_size=3)
        stored = [a.store.mapper.to_stored_event(e) for e in organizer.collect_events()]
        stored[0] = StoredEvent(originator_id=stored[0].originator_id, originator_version=1,
                                topic=stored[0].topic, state=stored[0].state + bytes(range(256)))  # every byte value
        a.store.recorder.insert_events(stored)
        with psycopg.connect(url) as conn:  # the rows themselves, not what reads make of them
            rows = conn.execute("SELECT originator_version, topic, state FROM ledger_events"
                                " WHERE originator_id = %s ORDER BY originator_version", (organizer.id,)).fetchall()
        assert rows == [(e.originator_version, e.topic, e.state) for e in stored]


def test_a_save_returns_the_notification_ids_it_was_given(fresh_ledger: Ledger) -> None:
    organizer = Organizer.register(id=uuid.uuid4(), name="x", country="US", plan_size=5)
    organizer.change_plan(6)
    organizer.change_plan(7)
    recordings = fresh_ledger.store.save(organizer)
    ids = [r.notification.id for r in recordings]
    with psycopg.connect(fresh_ledger.database_url) as conn:
        rows = conn.execute(
            "SELECT notification_id FROM ledger_events WHERE originator_id = %s ORDER BY originator_version",
            (organizer.id,),
        ).fetchall()
    assert ids == [r[0] for r in rows] and ids == sorted(ids) and len(ids) == 3


def test_a_failed_save_leaves_nothing_and_its_session_is_used_again(fresh_ledger: Ledger) -> None:
    """A claim that violates the key fails the whole save (no events, no
    data key, no claim of its own), and the pooled session it ran on is
    back in a usable state for every save after it."""
    recorder = fresh_ledger.store.recorder
    assert isinstance(recorder, LedgerRecorder)
    event_id, digest = str(uuid.uuid4()), b"\x01" * 32
    with fresh_ledger.db.transaction() as conn:
        conn.execute("INSERT INTO registration_emails (event_id, email_digest, registration_id) VALUES (%s, %s, %s)",
                     (event_id, digest, str(uuid.uuid4())))
    registration = Registration.register(
        id=uuid.uuid4(), event_id=event_id, organizer_id=str(uuid.uuid4()), name="N", email="n@example.com",
        fields={}, language=None, price_minor=1000, currency="USD", provider="manual",
    )
    claim = EmailClaim(event_id, digest, str(registration.id))
    for _ in range(3):  # more than once: each failure on a pooled session
        with pytest.raises(IntegrityError):
            fresh_ledger.store.save(registration, idempotency_marks=[claim])
    with pytest.raises(AggregateNotFoundError):
        fresh_ledger.store.repository.get(registration.id)
    with fresh_ledger.db.transaction() as conn:
        keys = conn.execute("SELECT count(*) FROM personal_data_keys WHERE registration_id = %s",
                            (str(registration.id),)).fetchone()
        claims = conn.execute("SELECT count(*) FROM registration_emails WHERE registration_id = %s",
                              (str(registration.id),)).fetchone()
    assert keys == (0,) and claims == (0,)
    for _ in range(25):  # every pooled session still commits
        fresh_ledger.store.save(Organizer.register(id=uuid.uuid4(), name="y", country="US", plan_size=1))
    with psycopg.connect(fresh_ledger.database_url) as conn:
        row = conn.execute("SELECT count(*) FROM ledger_events").fetchone()
    assert row == (25,)


def test_the_same_address_from_another_process_gets_the_first_registration(
    pg_server: TestServer, tmp_path: Path
) -> None:
    """The second ledger claims the address without looking it up first: its
    save fails on the claim's key, and the re-run answers with the first
    registration.  One registration, one seat."""
    url = pg_server.new_database()
    with two_ledgers(url, tmp_path) as (a, b):
        _, event_id = manual_event(a)
        first = a.service.register_participant(event_id, name="Ada", email="ada@example.com", fields={},
                                               fresh_id=uuid.uuid4())
        b.service.event(event_id)  # cached in b, so b's sale takes the fast path
        mine = uuid.uuid4()
        again = b.service.register_participant(event_id, name="Ada", email=" ADA@example.com ", fields={},
                                               fresh_id=mine)
        assert again.id == first.id and again.id != mine
        event = a.service.event(event_id)
        assert list(event.holds) == [str(first.id)]
        with pytest.raises(AggregateNotFoundError):
            b.store.repository.get(mine)


def test_one_query_brings_the_event_and_its_plan_up_to_date(pg_server: TestServer, tmp_path: Path) -> None:
    """Both cached in one process, both changed by another: the combined
    fast-forward returns each at its newest version, and the plan change
    limits the very next sale (R9 across processes)."""
    url = pg_server.new_database()
    with two_ledgers(url, tmp_path) as (a, b):
        org_id, event_id = manual_event(a, plan=10)
        a.service.register_participant(event_id, name="p0", email="p0@example.com", fields={})
        a.service._event_and_capacity(event_id)  # both cached in a
        b.service.register_participant(event_id, name="p1", email="p1@example.com", fields={})
        b.service.change_plan(org_id, 2)
        recorder = a.store.recorder
        assert isinstance(recorder, LedgerRecorder)
        calls: list[int] = []
        original = recorder.select_events_after

        def counting(versions):  # type: ignore[no-untyped-def]
            calls.append(len(versions))
            return original(versions)

        recorder.select_events_after = counting  # type: ignore[method-assign]
        event, capacity = a.service._event_and_capacity(event_id)
        assert calls == [2]  # one query for both
        assert capacity == 2 and event.version == b.service.event(event_id).version
        assert len(event.holds) == 2
        with pytest.raises(CapacityExhausted):
            a.service.register_participant(event_id, name="p2", email="p2@example.com", fields={})


def test_the_fast_forward_query_returns_what_the_table_holds(fresh_ledger: Ledger) -> None:
    """``select_events_after`` (libpq, binary) returns the rows a plain
    psycopg query returns, byte for byte, for one pair or several, newest
    versions or none -- on every pooled session, prepared once on each."""
    recorder = fresh_ledger.store.recorder
    assert isinstance(recorder, LedgerRecorder)
    organizers = [Organizer.register(id=uuid.uuid4(), name=AWKWARD, country="US", plan_size=n) for n in (1, 2)]
    for organizer in organizers:
        for size in range(3, 6):
            organizer.change_plan(size)
        stored = [fresh_ledger.store.mapper.to_stored_event(e) for e in organizer.collect_events()]
        stored[-1] = StoredEvent(originator_id=stored[-1].originator_id, originator_version=4,
                                 topic=stored[-1].topic, state=stored[-1].state + bytes(range(256)))
        recorder.insert_events(stored)
    first, second = (o.id for o in organizers)
    with psycopg.connect(fresh_ledger.database_url) as conn:
        def expected(pairs: list[tuple[uuid.UUID, int]]) -> list[tuple[object, ...]]:
            rows = [row for o, v in pairs for row in conn.execute(
                "SELECT originator_id, originator_version, topic, state FROM ledger_events"
                " WHERE originator_id = %s AND originator_version > %s", (o, v)).fetchall()]
            return sorted(rows, key=lambda r: (r[0], r[1]))

        for _ in range(12):  # more than the pool's sessions
            for pairs in ([(first, 0)], [(first, 2), (second, 1)], [(second, 4), (first, 4)], [(uuid.uuid4(), 0)]):
                got = recorder.select_events_after(pairs)
                assert [(e.originator_id, e.originator_version, e.topic, e.state) for e in got] == expected(pairs)
                assert all(type(e.originator_id) is uuid.UUID and type(e.state) is bytes for e in got)
    assert recorder.select_events_after([]) == []


def test_the_fast_forward_query_survives_its_statement_being_deallocated(
    pg_server: TestServer, tmp_path: Path
) -> None:
    """psycopg sends DEALLOCATE ALL on a session after it sees a ROLLBACK
    (the pool's, after any failed save): the statement is prepared again."""
    ledger = bootstrap(make_settings(tmp_path), url=pg_server.new_database(), pool_size=1)
    try:
        org_id, event_id = manual_event(ledger)
        recorder = ledger.store.recorder
        assert isinstance(recorder, LedgerRecorder)
        pairs = [(uuid.UUID(event_id), 0), (uuid.UUID(org_id), 0)]
        before = recorder.select_events_after(pairs)
        with recorder.datastore.get_connection() as conn:
            conn.execute("DEALLOCATE ALL")
        assert recorder.select_events_after(pairs) == before and len(before) >= 2
    finally:
        ledger.close()
