"""A key's outcome is recorded in the same transaction as its command's events
(issue 11, item 3), on real PostgreSQL: through the service, through group
commits and their conflict fallback, and what a take-over does with it."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError

from ledger.application import LedgerRecorder
from ledger.container import Ledger
from ledger.domain.organizer import Organizer
from ledger.errors import InvalidState
from ledger.idempotency_store import (
    ActiveKey,
    ClaimResult,
    CommitMark,
    IdempotencyStore,
    KeySlot,
    Outcome,
    using_key,
)
from ledger.money import Money
from ledger.scope import ANYONE


def _claimed(ledger: Ledger, fingerprint: str = "f1") -> KeySlot:
    slot = KeySlot("test", uuid.uuid4().hex)
    assert IdempotencyStore(ledger.db).claim(slot, fingerprint).result is ClaimResult.CLAIMED
    return slot


def _committed(ledger: Ledger, slot: KeySlot) -> dict[str, Any]:
    with ledger.db.transaction() as conn:
        row = conn.execute(
            "SELECT committed FROM idempotency_keys WHERE credential = %s AND key = %s", (slot.credential, slot.key)
        ).fetchone()
    assert row is not None
    return dict(row[0] or {})


def _age(ledger: Ledger, slot: KeySlot, by: timedelta) -> None:
    with ledger.db.transaction() as conn:
        conn.execute("UPDATE idempotency_keys SET created_at = created_at - %s WHERE credential = %s AND key = %s",
                     (by, slot.credential, slot.key))


def _paid_registration(ledger: Ledger) -> str:
    service = ledger.service
    organizer = service.register_organizer(name="O", country="US", plan_size=10)
    organizer, _ = service.connect_provider(str(organizer.id), provider="manual", masked={},
                                            store_secrets=lambda _cid: None)
    event = service.create_event(
        organizer_id=str(organizer.id), title="W", description="", timezone="UTC", permanent=False,
        sessions=[datetime(2038, 5, 1, 18, tzinfo=UTC)], price=Money(4900, "USD"), provider="manual",
    )
    rid = str(service.register_participant(str(event.id), name="A", email="a@example.test", fields={}).id)
    service.record_payment(rid, amount=Money(4900, "USD"), provider="manual", reference=f"cash-{rid}")
    return rid


def test_a_keyed_command_records_its_result_with_its_events_and_a_retry_answers_from_it(
    shared_ledger: Ledger,
) -> None:
    service, rid = shared_ledger.service, _paid_registration(shared_ledger)
    slot = _claimed(shared_ledger)
    with using_key(ActiveKey(slot)):
        first = service.request_resend(rid, scope=ANYONE)
    assert _committed(shared_ledger, slot) == {f"request_resend:{rid}": first.version}
    # The process died before the answer was stored; the retry takes the key over.
    _age(shared_ledger, slot, timedelta(minutes=2))
    claim = IdempotencyStore(shared_ledger.db).claim(slot, "f1")
    assert claim.result is ClaimResult.CLAIMED and claim.committed == {f"request_resend:{rid}": first.version}
    with using_key(ActiveKey(slot, claim.committed)):
        again = service.request_resend(rid, scope=ANYONE)
        rejected = service.reject(rid, reason="r", scope=ANYONE)  # not committed before: runs
    assert again.version == first.version and again.resends == 1
    assert service.registration(rid).resends == 1
    assert rejected.status == "refund_due"
    # Unkeyed, the same command runs (and a closed registration refuses it).
    with pytest.raises(InvalidState):
        service.reject(rid, reason="r", scope=ANYONE)


def test_a_refused_command_records_nothing_and_its_claim_is_released(shared_ledger: Ledger) -> None:
    rid = _paid_registration(shared_ledger)
    shared_ledger.service.reject(rid, reason="r", scope=ANYONE)
    slot = _claimed(shared_ledger)
    with using_key(ActiveKey(slot)), pytest.raises(InvalidState):
        shared_ledger.service.reject(rid, reason="again", scope=ANYONE)
    assert _committed(shared_ledger, slot) == {}
    with shared_ledger.db.transaction() as conn:
        IdempotencyStore.release(conn, slot)
    assert IdempotencyStore(shared_ledger.db).claim(slot, "other").result is ClaimResult.CLAIMED


def test_group_commits_record_every_callers_marks_and_only_the_savers_on_conflict(fresh_ledger: Ledger) -> None:
    """Rivals for version 2 of one organizer and unrelated new organizers, each
    under its own key, saved at once: they are grouped, the group conflicts and
    falls back to one caller at a time.  Exactly the callers whose events were
    written have their mark; the conflicting ones have none."""
    store = fresh_ledger.store
    recorder = store.recorder
    assert isinstance(recorder, LedgerRecorder)
    groups: list[int] = []
    original = recorder._insert_now

    def counting(events, **kwargs):  # type: ignore[no-untyped-def]
        groups.append(len(kwargs.get("marks") or ()))
        return original(events, **kwargs)

    recorder._insert_now = counting  # type: ignore[method-assign,assignment]
    organizer = Organizer.register(id=uuid.uuid4(), name="x", country="US", plan_size=5)
    store.save(organizer)
    slots = [_claimed(fresh_ledger) for _ in range(12)]
    start = threading.Barrier(12)

    def change(i: int) -> tuple[str, str, int]:
        if i % 2:
            mine: Organizer = store.repository.get(organizer.id)
            mine.change_plan(10 + i)
        else:
            mine = Organizer.register(id=uuid.uuid4(), name="y", country="US", plan_size=5)
        mark = CommitMark(slots[i], f"cmd:{mine.id}", mine.version)
        start.wait()
        try:
            store.save(mine, idempotency_marks=(mark,))
            return "saved", mark.entry, mark.version
        except IntegrityError:
            return "conflict", mark.entry, mark.version

    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(change, range(12)))
    assert [r[0] for r in results].count("conflict") == 5
    for slot, (outcome, entry, version) in zip(slots, results, strict=True):
        assert _committed(fresh_ledger, slot) == ({entry: version} if outcome == "saved" else {})
    assert max(groups) > 1, "some saves were grouped with their marks"


def _set_committed(ledger: Ledger, slot: KeySlot, committed: str) -> None:
    with ledger.db.transaction() as conn:
        conn.execute("UPDATE idempotency_keys SET committed = %s::jsonb WHERE credential = %s AND key = %s",
                     (committed, slot.credential, slot.key))


def test_a_claim_that_committed_is_taken_over_with_its_result_and_never_by_another_request(
    shared_ledger: Ledger,
) -> None:
    store = IdempotencyStore(shared_ledger.db, wait_for_first=0.3)
    # Still running (not stale, not released): a duplicate waits, then is busy.
    running = _claimed(shared_ledger)
    _set_committed(shared_ledger, running, '{"cmd:x": 3}')
    assert store.claim(running, "f1").result is ClaimResult.BUSY
    # Its holder died: stale, taken over by the same request with what committed.
    _age(shared_ledger, running, timedelta(minutes=2))
    assert store.claim(running, "other").result is ClaimResult.REUSED  # it did something: never another request
    claim = store.claim(running, "f1")
    assert claim.result is ClaimResult.CLAIMED and claim.committed == {"cmd:x": 3}
    with shared_ledger.db.transaction() as conn:
        IdempotencyStore.complete(conn, running, Outcome(200, {}, b"answer"))
    assert store.claim(running, "f1").outcome == Outcome(200, {}, b"answer")
    # Its holder failed after a commit (a 5xx) and released it: the claim is
    # kept, marked released, and the retry goes on at once from what committed.
    released = _claimed(shared_ledger)
    _set_committed(shared_ledger, released, '{"cmd:y": 2}')
    with shared_ledger.db.transaction() as conn:
        IdempotencyStore.release(conn, released)
    assert store.claim(released, "other").result is ClaimResult.REUSED
    claim = store.claim(released, "f1")
    assert claim.result is ClaimResult.CLAIMED and claim.committed == {"cmd:y": 2}
    assert _committed(shared_ledger, released) == {"cmd:y": 2}  # claimed again: no longer released
