"""The one idempotency store (API keys and the pages' form keys) on real
PostgreSQL: claim, replay, take-over of a stale claim, reuse refused."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta

from ledger.container import Ledger
from ledger.idempotency_store import Claim, ClaimResult, IdempotencyStore, KeySlot, Outcome


def _slot(credential: str = "test") -> KeySlot:
    return KeySlot(credential, uuid.uuid4().hex)


def _store(ledger: Ledger, *, wait: float = 0.2) -> IdempotencyStore:
    return IdempotencyStore(ledger.db, wait_for_first=wait)


def _complete(ledger: Ledger, slot: KeySlot, outcome: Outcome) -> None:
    with ledger.db.transaction() as conn:
        IdempotencyStore.complete(conn, slot, outcome)


def _age(ledger: Ledger, slot: KeySlot, by: timedelta) -> None:
    with ledger.db.transaction() as conn:
        conn.execute(
            "UPDATE idempotency_keys SET created_at = created_at - %s WHERE credential = %s AND key = %s",
            (by, slot.credential, slot.key),
        )


def test_first_claim_runs_and_a_completed_key_replays_its_outcome_byte_for_byte(shared_ledger: Ledger) -> None:
    store, slot = _store(shared_ledger), _slot()
    assert store.claim(slot, "f1") == Claim(ClaimResult.CLAIMED)
    outcome = Outcome(201, {"Content-Type": "application/json", "Location": "/v1/x"}, b'{"id": "\xc3\xa9"}\n')
    _complete(shared_ledger, slot, outcome)
    assert store.claim(slot, "f1") == Claim(ClaimResult.DONE, outcome)
    assert store.claim(slot, "f1") == Claim(ClaimResult.DONE, outcome)  # as often as asked


def test_the_same_key_of_another_credential_is_another_slot(shared_ledger: Ledger) -> None:
    store, slot = _store(shared_ledger), _slot("api")
    assert store.claim(slot, "f1").result is ClaimResult.CLAIMED
    assert store.claim(KeySlot("pages:someone", slot.key), "f2").result is ClaimResult.CLAIMED


def test_a_different_fingerprint_is_refused_while_running_and_once_done(shared_ledger: Ledger) -> None:
    store, slot = _store(shared_ledger), _slot()
    assert store.claim(slot, "f1").result is ClaimResult.CLAIMED
    assert store.claim(slot, "other").result is ClaimResult.REUSED
    _complete(shared_ledger, slot, Outcome(303, {"Location": "/events"}))
    assert store.claim(slot, "other").result is ClaimResult.REUSED
    assert store.claim(slot, "f1").result is ClaimResult.DONE


def test_a_duplicate_of_a_running_claim_waits_a_bounded_time_then_is_busy(shared_ledger: Ledger) -> None:
    store, slot = _store(shared_ledger, wait=0.3), _slot()
    assert store.claim(slot, "f1").result is ClaimResult.CLAIMED
    started = time.monotonic()
    assert store.claim(slot, "f1").result is ClaimResult.BUSY
    assert 0.3 <= time.monotonic() - started < 2.0


def test_a_stale_claim_is_taken_over_and_the_new_fingerprint_counts(shared_ledger: Ledger) -> None:
    """The first holder died between command and complete: after STALE_CLAIM
    the next request runs (with its own fingerprint), and the late outcome of
    the new holder is what replays."""
    store, slot = _store(shared_ledger), _slot()
    assert store.claim(slot, "f1").result is ClaimResult.CLAIMED
    _age(shared_ledger, slot, store.stale_claim - timedelta(seconds=5))
    assert store.claim(slot, "f1").result is ClaimResult.BUSY  # not stale yet
    _age(shared_ledger, slot, timedelta(seconds=10))
    assert store.claim(slot, "f2").result is ClaimResult.CLAIMED
    assert store.claim(slot, "f1").result is ClaimResult.REUSED  # the taken-over claim is fresh again
    _complete(shared_ledger, slot, Outcome(200, {}, b"second"))
    assert store.claim(slot, "f2") == Claim(ClaimResult.DONE, Outcome(200, {}, b"second"))


def test_a_completed_key_is_not_taken_over_until_the_replay_window_ends(shared_ledger: Ledger) -> None:
    store, slot = _store(shared_ledger), _slot()
    store.claim(slot, "f1")
    _complete(shared_ledger, slot, Outcome(200, {}, b"first"))
    _age(shared_ledger, slot, store.replay_window - timedelta(minutes=1))
    assert store.claim(slot, "f2").result is ClaimResult.REUSED
    _age(shared_ledger, slot, timedelta(minutes=2))
    assert store.claim(slot, "f2").result is ClaimResult.CLAIMED


def test_release_frees_a_running_claim_but_never_a_done_one(shared_ledger: Ledger) -> None:
    store, slot = _store(shared_ledger), _slot()
    store.claim(slot, "f1")
    with shared_ledger.db.transaction() as conn:
        IdempotencyStore.release(conn, slot)
    assert store.claim(slot, "corrected").result is ClaimResult.CLAIMED
    _complete(shared_ledger, slot, Outcome(303, {"Location": "/x"}))
    with shared_ledger.db.transaction() as conn:
        IdempotencyStore.release(conn, slot)
    assert store.claim(slot, "corrected").result is ClaimResult.DONE


def test_complete_belongs_to_the_callers_transaction(shared_ledger: Ledger) -> None:
    """An outcome written in a transaction that rolls back was never written:
    the claim is still running."""
    store, slot = _store(shared_ledger), _slot()
    store.claim(slot, "f1")
    try:
        with shared_ledger.db.transaction() as conn:
            IdempotencyStore.complete(conn, slot, Outcome(200, {}, b"lost"))
            raise RuntimeError("the command's transaction failed")
    except RuntimeError:
        pass
    assert store.claim(slot, "f1").result is ClaimResult.BUSY


def test_concurrent_duplicates_run_once_and_the_others_replay(shared_ledger: Ledger) -> None:
    store, slot = _store(shared_ledger, wait=5.0), _slot()
    results: list[Claim] = []
    lock = threading.Lock()
    start = threading.Barrier(6)

    def attempt() -> None:
        start.wait()
        claim = store.claim(slot, "f1")
        if claim.result is ClaimResult.CLAIMED:
            time.sleep(0.2)  # the command runs while the duplicates wait
            _complete(shared_ledger, slot, Outcome(201, {}, b"once"))
        with lock:
            results.append(claim)

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert sorted(c.result.value for c in results) == ["claimed"] + ["done"] * 5
    assert all(c.outcome == Outcome(201, {}, b"once") for c in results if c.result is ClaimResult.DONE)
