"""The planner never holds a transaction while it waits on the event store.

Issue 11's restart deadlock: start-up DDL held an ACCESS EXCLUSIVE lock on
``ledger_events`` and wanted ``access_tokens``, while the planner had a
transaction open on ``notify_position``/``access_tokens`` and waited for an
event-store read (another connection) queued behind that lock.  Here a test
session plays the DDL: it locks ``ledger_events`` first, lets the planner start
on a payment (whose decision reads the registration from the event store), and
then asks for the planner's tables.  The planner must be waiting with no
transaction of its own, so the "DDL" gets its locks at once.
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg
from psycopg import sql

from ledger.event_log import to_item
from tests.support.notify_world import World
from tests.support.waiting import wait_until
from workers.notify_planner import Planner


def _waiting_on_events(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'ledger_events'::regclass"
    ).fetchone()
    return bool(row and row[0])


def test_planner_waits_on_the_event_store_without_a_transaction_open(world: World) -> None:
    ledger = world.ledger
    org = world.organizer()
    rid = world.register(world.event(org), "ann@example.com")
    planner = Planner(ledger)
    recorder = ledger.store.recorder
    for notification in recorder.select_notifications(start=0, limit=100):  # up to the payment
        planner.handle(notification)
    world.pay(rid)
    later = recorder.select_notifications(start=planner.position(), limit=10, inclusive_of_start=False)
    payment = [n for n in later if to_item(ledger.store, n).type == "PaymentRecorded"]
    assert len(payment) == 1

    with psycopg.connect(ledger.database_url) as ddl:
        ddl.execute("SET lock_timeout = '3s'")
        ddl.execute("LOCK TABLE ledger_events IN ACCESS EXCLUSIVE MODE")
        added: list[int] = []
        planning = threading.Thread(target=lambda: added.append(planner.handle(payment[0])))
        planning.start()
        try:
            wait_until(lambda: _waiting_on_events(ddl), timeout=5, what="the planner to read the event store")
            idle = ddl.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'"
            ).fetchone()
            assert idle == (0,), "the planner holds a transaction while it waits on another connection"
            # What the first release's start-up DDL wanted next: granted at once.
            for table in ("notify_position", "access_tokens", "notify_outbox", "notify_registrations"):
                ddl.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(table)))
        finally:
            ddl.rollback()  # the planner's read goes on
            planning.join(timeout=15)
    assert not planning.is_alive()
    assert added == [1]  # the confirmation, planned once
