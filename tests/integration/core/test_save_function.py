"""The event store's save as one call of the database's save function
(migrations 16 and 17, ``ledger_save_events``; ledger.application:
LedgerRecorder._insert_by_function): what it writes, the lock it takes before
inserting, NOTIFY, and the fallback for a database without the function."""

from __future__ import annotations

import threading
import time
import uuid

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent

from ledger.application import LedgerRecorder, LedgerStore, ReadCheck
from ledger.container import Ledger
from ledger.database import eventsourcing_env
from ledger.domain.organizer import Organizer
from ledger.idempotency_store import ClaimResult, CommitMark, IdempotencyStore, KeySlot
from ledger.registration_emails import EmailClaim
from tests.support.postgres import TestServer


def _recorder(ledger: Ledger) -> LedgerRecorder:
    recorder = ledger.store.recorder
    assert isinstance(recorder, LedgerRecorder)
    return recorder


def _event(topic: str = "tests:Stray", state: bytes = b"{}") -> StoredEvent:
    return StoredEvent(originator_id=uuid.uuid4(), originator_version=1, topic=topic, state=state)


def test_ordinary_saves_call_the_function_and_write_every_row(fresh_ledger: Ledger) -> None:
    """Marks (two on one key merged as successive UPDATEs would), a claim that
    replaces an ended registration's claim, and the events with bytes of any
    value, in one call; the rows read back exactly."""
    recorder = _recorder(fresh_ledger)
    calls: list[int] = []
    original = recorder._insert_by_function

    def counting(events, marks):  # type: ignore[no-untyped-def]
        calls.append(len(events))
        return original(events, marks)

    recorder._insert_by_function = counting  # type: ignore[method-assign]
    slot = KeySlot("test", uuid.uuid4().hex)
    assert IdempotencyStore(fresh_ledger.db).claim(slot, "f1").result is ClaimResult.CLAIMED
    event_id, digest, ended, new = uuid.uuid4(), bytes(range(32)), uuid.uuid4(), uuid.uuid4()
    with fresh_ledger.db.transaction() as conn:
        conn.execute("INSERT INTO registration_emails VALUES (%s, %s, %s)", (event_id, digest, ended))
    events = [_event("tests:Ünïcode \"quoted\" \\ topic", bytes(range(256)) * 3), _event(state=b"")]
    marks = [CommitMark(slot, "a:1", 1), CommitMark(slot, "b:2", 2), CommitMark(slot, "a:1", 3),
             EmailClaim(str(event_id), digest, str(new), replaces=str(ended))]
    ids = recorder.insert_events(events, idempotency_marks=marks)
    assert calls == [2] and ids is not None and len(ids) == 2 and list(ids) == sorted(ids)
    assert [recorder.select_events(e.originator_id)[0] for e in events] == events
    with fresh_ledger.db.transaction() as conn:
        committed = conn.execute("SELECT committed FROM idempotency_keys WHERE credential = %s AND key = %s",
                                 (slot.credential, slot.key)).fetchone()
        claims = conn.execute("SELECT registration_id FROM registration_emails WHERE event_id = %s",
                              (event_id,)).fetchall()
    assert committed == ({"a:1": 3, "b:2": 2},)
    assert claims == [(new,)]


def test_a_claimed_address_fails_the_whole_call(fresh_ledger: Ledger) -> None:
    recorder = _recorder(fresh_ledger)
    event_id, digest = str(uuid.uuid4()), b"\x02" * 32
    first = _event()
    recorder.insert_events([first], idempotency_marks=[EmailClaim(event_id, digest, str(uuid.uuid4()))])
    second = _event()
    with pytest.raises(IntegrityError):
        recorder.insert_events([second], idempotency_marks=[EmailClaim(event_id, digest, str(uuid.uuid4()))])
    assert recorder.select_events(second.originator_id) == []
    with pytest.raises(IntegrityError):  # a taken version
        recorder.insert_events([first])


def test_the_save_takes_the_tables_exclusive_lock_before_inserting(fresh_ledger: Ledger) -> None:
    """A ROW SHARE lock held elsewhere does not block a plain INSERT (ROW
    EXCLUSIVE) but does block the EXCLUSIVE lock that keeps the notification
    log in commit order: the save must wait for it."""
    recorder = _recorder(fresh_ledger)
    done = threading.Event()
    with psycopg.connect(fresh_ledger.database_url) as holder:
        holder.execute("LOCK TABLE ledger_events IN ROW SHARE MODE")

        def save() -> None:
            recorder.insert_events([_event()])
            done.set()

        saver = threading.Thread(target=save)
        saver.start()
        time.sleep(0.5)
        assert not done.is_set()
        with psycopg.connect(fresh_ledger.database_url) as probe:
            waiting = probe.execute("SELECT mode FROM pg_locks WHERE relation = 'ledger_events'::regclass"
                                    " AND NOT granted").fetchall()
        assert waiting == [("ExclusiveLock",)]
        holder.rollback()
    saver.join(10)
    assert done.is_set()


def test_the_save_notifies_the_logs_followers(fresh_ledger: Ledger) -> None:
    with psycopg.connect(fresh_ledger.database_url, autocommit=True) as listener:
        listener.execute("LISTEN ledger_events")
        _recorder(fresh_ledger).insert_events([_event()])
        channels = [n.channel for n in listener.notifies(timeout=5, stop_after=1)]
    assert channels == ["ledger_events"]


def test_a_database_without_the_function_saves_by_one_query(pg_server: TestServer) -> None:
    url = pg_server.new_database()
    with psycopg.connect(url) as conn:
        for (signature,) in conn.execute("SELECT oid::regprocedure::text FROM pg_proc"
                                         " WHERE proname = 'ledger_save_events'").fetchall():
            conn.execute(f"DROP FUNCTION {signature}")  # both overloads (migrations 16 and 17)
    store = LedgerStore(env={**eventsourcing_env(url, pool_size=2), "PERSISTENCE_MODULE": "eventsourcing.postgres"})
    try:
        organizer = Organizer.register(id=uuid.uuid4(), name="x", country="US", plan_size=5)
        store.save(organizer)
        recorder = store.recorder
        assert isinstance(recorder, LedgerRecorder) and recorder._save_function is False
        assert store.repository.get(organizer.id).version == 1
    finally:
        store.close()


def test_the_call_survives_deallocated_statements_and_lost_connections(pg_server: TestServer) -> None:
    """The call's statement is prepared once per connection on the libpq
    handle: after a DEALLOCATE ALL on the session (psycopg sends one after a
    ROLLBACK) it is prepared again, and a connection lost between saves is
    replaced and the save retried, as the library's insert is."""
    url = pg_server.new_database()
    store = LedgerStore(env={**eventsourcing_env(url, pool_size=1), "PERSISTENCE_MODULE": "eventsourcing.postgres"})
    try:
        recorder = store.recorder
        assert isinstance(recorder, LedgerRecorder)
        first = _event()
        assert recorder.insert_events([first]) is not None and recorder._save_function is True
        with recorder.datastore.get_connection() as conn:  # the pool's one connection
            conn.execute("DEALLOCATE ALL")
            pid = conn.info.backend_pid
        second = _event()
        assert recorder.insert_events([second]) is not None
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        third = _event()
        ids = recorder.insert_events([third])
        assert ids is not None and len(ids) == 1
        assert [recorder.select_events(e.originator_id) for e in (first, second, third)] == [
            [first], [second], [third]]
        with pytest.raises(IntegrityError):  # a taken version: the library's error, nothing written
            recorder.insert_events([_event(), third])
    finally:
        store.close()


def test_a_read_check_fails_the_call_when_what_was_read_moved(fresh_ledger: Ledger) -> None:
    """Migration 17: a save decided on an aggregate it only read (a sale, on
    its organizer) writes nothing when that aggregate has a newer event."""
    recorder = _recorder(fresh_ledger)
    read_id = uuid.uuid4()
    for version in (1, 2):
        recorder.insert_events([StoredEvent(originator_id=read_id, originator_version=version,
                                            topic="tests:Stray", state=b"{}")])
    mine = _event()
    with pytest.raises(IntegrityError):
        recorder.insert_events([mine], idempotency_marks=[ReadCheck(read_id, 1)])
    assert recorder.select_events(mine.originator_id) == []
    recorder.insert_events([mine], idempotency_marks=[ReadCheck(read_id, 2)])  # read current: saved
    assert recorder.select_events(mine.originator_id) == [mine]


def test_each_save_reports_what_others_committed_since_the_last(fresh_ledger: Ledger) -> None:
    recorder = _recorder(fresh_ledger)
    reports: list[list[tuple[uuid.UUID, int, bytes]]] = []
    recorder.on_moves = lambda moves: reports.append(
        [(e.originator_id, e.originator_version, e.state) for e in moves or []])  # type: ignore[misc]
    assert recorder.track_moves()
    recorder.insert_events([_event()])
    assert reports == [[]]  # nothing committed since tracking began
    theirs = uuid.uuid4()
    with psycopg.connect(fresh_ledger.database_url) as other_writer:
        for version in (1, 2):
            other_writer.execute("INSERT INTO ledger_events (originator_id, originator_version, topic, state)"
                                 " VALUES (%s, %s, 'tests:Stray', '{}')", (theirs, version))
    recorder.insert_events([_event()])
    # not this process's own earlier save, nor the creation (version 1): no cache can hold it from before
    assert reports[-1] == [(theirs, 2, b"{}")]
    recorder.insert_events([_event()])
    assert reports[-1] == []  # each reported once
