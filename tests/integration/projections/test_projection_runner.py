"""The projection runner against a real PostgreSQL: views agree with the
aggregates (R14, R15), batches of any size give the same views, new commits
arrive through LISTEN/NOTIFY, concurrent runners never double-apply."""

from __future__ import annotations

import threading
import time
from typing import Any

from ledger import event_log
from ledger.container import Ledger
from ledger.money import Money
from ledger.scope import ANYONE
from projections import generations, runner, who_paid_query
from projections.rebuild import rebuild
from projections.runner import ProjectionRunner
from tests.integration.projections.history import (
    aggregate_view,
    organizer_with_event,
    paid_registration,
    project,
    snapshot,
    write_bulk,
)


def every_status_story(ledger: Ledger) -> tuple[str, str, dict[str, str]]:
    """One registration in each status of API.md, plus a cancelled event."""
    service = ledger.service
    org_id, event_id = organizer_with_event(ledger, price=Money(1010, "USD"))
    regs = {
        "awaiting_payment": paid_registration(ledger, event_id, 1, pay=False),
        "paid": paid_registration(ledger, event_id, 2),
        "confirmed": paid_registration(ledger, event_id, 3),
        "rejected": paid_registration(ledger, event_id, 4, pay=False),
        "refund_due": paid_registration(ledger, event_id, 5),
        "refunded": paid_registration(ledger, event_id, 6),
    }
    service.confirm(regs["confirmed"], scope=ANYONE)
    service.reject(regs["rejected"], reason="spam", scope=ANYONE)
    service.reject(regs["refund_due"], reason="duplicate", scope=ANYONE)
    service.record_refund(regs["refund_due"], amount=Money(505, "USD"), reference="half")
    service.record_refund(regs["refunded"], amount=Money(1010, "USD"), reference="all")
    service.record_payment_failure(regs["awaiting_payment"], reason="card_declined", reference="cs-1")
    service.request_resend(regs["paid"], scope=ANYONE)
    other_event = service.create_event(
        organizer_id=org_id, title="Cancelled one", description="", sessions=[time_of(2038)],
        timezone="UTC", permanent=False, price=Money(2000, "USD"), provider="manual",
    )
    paid_then_cancelled = paid_registration(ledger, str(other_event.id), 7)
    unpaid_then_cancelled = paid_registration(ledger, str(other_event.id), 8, pay=False)
    service.cancel_event(str(other_event.id), reason="speaker ill", scope=ANYONE)
    regs["cancelled"] = unpaid_then_cancelled
    regs["refund_due (event cancelled)"] = paid_then_cancelled
    return org_id, event_id, regs


def time_of(year: int) -> Any:
    from datetime import UTC, datetime

    return datetime(year, 1, 1, tzinfo=UTC)


def view_row(ledger: Ledger, registration_id: str) -> dict[str, Any]:
    with ledger.db.transaction() as conn:
        row = conn.execute(
            "SELECT status, paid_minor, refunded_minor, refund_due_minor, fee_minor, fee_reversed_minor"
            " FROM projections.who_paid WHERE registration_id = %s", (registration_id,)
        ).fetchone()
    assert row is not None, registration_id
    keys = ("status", "paid_minor", "refunded_minor", "refund_due_minor", "fee_minor", "fee_reversed_minor")
    return dict(zip(keys, row, strict=True))


def test_views_agree_with_the_aggregates_in_every_status(fresh_ledger: Ledger) -> None:
    _, event_id, regs = every_status_story(fresh_ledger)
    project(fresh_ledger, batch_size=7)
    for expected_status, rid in regs.items():
        row = view_row(fresh_ledger, rid)
        assert row == aggregate_view(fresh_ledger, rid), expected_status
        assert row["status"] == expected_status.split(" ")[0]
    items = who_paid_query.page(fresh_ledger, event_id, scope=ANYONE).items
    by_id = {i["registration_id"]: i for i in items}
    half = by_id[regs["refund_due"]]
    assert half["paid"] == {"amount": "10.10", "currency": "USD"}
    assert half["refunded"] == {"amount": "5.05", "currency": "USD"}
    assert half["refund_due"] == {"amount": "5.05", "currency": "USD"}
    assert half["rejected_at"] and half["refunded_at"] and half["paid_at"]
    assert by_id[regs["awaiting_payment"]]["payment_failures"] == 1
    assert by_id[regs["paid"]]["resends"] == 1
    with fresh_ledger.db.transaction() as conn:
        statuses = dict(conn.execute("SELECT title, status FROM projections.paid_events").fetchall())
    assert statuses == {"Webinar": "scheduled", "Cancelled one": "cancelled"}


def test_any_batch_size_gives_the_same_views(fresh_ledger: Ledger) -> None:
    every_status_story(fresh_ledger)
    project(fresh_ledger, batch_size=1)
    one_by_one = snapshot(fresh_ledger)
    assert ProjectionRunner(fresh_ledger).catch_up() == 0  # nothing left, nothing re-applied
    rebuild(fresh_ledger, batch_size=10_000)
    assert snapshot(fresh_ledger) == one_by_one
    assert runner.lag(fresh_ledger) == 0


def test_lag_counts_events_not_yet_projected(fresh_ledger: Ledger) -> None:
    _, event_id = organizer_with_event(fresh_ledger)
    project(fresh_ledger)
    before = event_log.head(fresh_ledger.store)
    paid_registration(fresh_ledger, event_id, 1)
    status = runner.status(fresh_ledger)
    assert status.lag == event_log.head(fresh_ledger.store) - before > 0
    assert status.position == before and status.generation == 1 and not status.rebuilding
    project(fresh_ledger)
    assert runner.lag(fresh_ledger) == 0


def test_new_commits_arrive_through_listen_notify(fresh_ledger: Ledger) -> None:
    """With a 3 s idle timeout, a poller would show changes after ~1.5 s on
    average; the runner must show each within half a second."""
    _, event_id = organizer_with_event(fresh_ledger)
    worker = ProjectionRunner(fresh_ledger, idle_timeout=3.0)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while runner.lag(fresh_ledger) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)  # the runner is now blocked on LISTEN
        for n in range(3):
            rid = paid_registration(fresh_ledger, event_id, n)
            started = time.monotonic()
            while True:
                with fresh_ledger.db.transaction() as conn:
                    found = conn.execute(
                        "SELECT status FROM projections.who_paid WHERE registration_id = %s", (rid,)
                    ).fetchone()
                if found and found[0] == "paid":
                    break
                assert time.monotonic() - started < 0.5, "the view did not follow the commit promptly"
                time.sleep(0.01)
    finally:
        stop.set()
        paid_registration(fresh_ledger, event_id, 99, pay=False)  # a NOTIFY wakes it to see stop
        thread.join(timeout=5)
    assert not thread.is_alive()


def test_concurrent_runners_apply_each_event_once(fresh_ledger: Ledger) -> None:
    write_bulk(fresh_ledger, 1500)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            ProjectionRunner(fresh_ledger, batch_size=97).catch_up()
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    concurrent = snapshot(fresh_ledger)
    rebuild(fresh_ledger)
    assert snapshot(fresh_ledger) == concurrent


def test_an_outdated_layout_is_rebuilt_by_the_runner(fresh_ledger: Ledger) -> None:
    _, event_id = organizer_with_event(fresh_ledger)
    paid_registration(fresh_ledger, event_id, 1)
    project(fresh_ledger)
    expected = snapshot(fresh_ledger)
    with fresh_ledger.db.transaction() as conn:
        conn.execute("UPDATE projections.generations SET layout = 0 WHERE state = 'active'")
    stop = threading.Event()
    thread = threading.Thread(target=ProjectionRunner(fresh_ledger).run, args=(stop,), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with fresh_ledger.db.transaction() as conn:
            active = generations.active(conn)
        if active and active.layout == generations.LAYOUT:
            break
        time.sleep(0.05)
    stop.set()
    thread.join(timeout=5)
    assert active is not None and active.generation == 2 and active.layout == generations.LAYOUT
    assert snapshot(fresh_ledger) == expected
