"""A poisoned event never stops the ledger silently (issue 11, item 2).

The API now refuses the amount that once wedged every view (R21), so the
poison is written the way the first release wrote it: through the aggregate's
event method, past the rule, saved by the store.  Then, with the projection
runner and the notify worker each in a process of its own (``ledger worker``):

* the runner fails on that event and retries with backoff; ``/readyz`` -- the
  API, in this test's process -- answers 503 naming it, the event's position
  and type and the error's class; ``ledger status`` shows the same;
* the notify worker goes on (its position passes the poison, later e-mails
  are written); later payments are *not* in who-paid;
* ``ledger rebuild`` stops with a one-line error naming the event, exit 1;
* once the stored event is repaired (as a superuser would), the runner
  recovers by itself, later payments show, and ``/readyz`` is 200 again.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg import sql

from api.app import create_app
from ledger import api_tokens, event_log
from ledger.container import Ledger
from ledger.domain.registration import Registration
from ledger.fee_policy import DEFAULT_FEE_POLICY
from ledger.money import Money
from tests.integration.projections.history import organizer_with_event, paid_registration
from tests.support.api_client import bearer
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[3]
POISON_MINOR = 10**19  # what `100000000000000000.00` was in minor units: beyond bigint


def _env(ledger: Ledger, data_dir: Path) -> dict[str, str]:
    # The same LEDGER_SECRET_KEY as the test's ledger: it unwraps the participants' data keys (R24).
    return {**os.environ, "LEDGER_DATABASE_URL": ledger.database_url, "LEDGER_DATA_DIR": str(data_dir),
            "LEDGER_SECRET_KEY": ledger.settings.secret_key.hex(), "PYTHONPATH": str(ROOT)}


def ledger_cli(ledger: Ledger, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "entrypoints.cli", *args], env=_env(ledger, data_dir), cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def workers(fresh_ledger: Ledger, tmp_path: Path) -> Iterator[Any]:
    started: list[subprocess.Popen[str]] = []

    def start(name: str) -> subprocess.Popen[str]:
        process = subprocess.Popen([sys.executable, "-m", "entrypoints.cli", "worker", name],
                                   env=_env(fresh_ledger, tmp_path), cwd=ROOT, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, text=True)
        started.append(process)
        return process

    yield start
    for process in started:
        process.send_signal(signal.SIGTERM)
    for process in started:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def write_poison(ledger: Ledger, registration_id: str) -> int:
    """A payment of 10**19 minor units, recorded past R21 as the first release did."""
    registration = ledger.service.registration(registration_id)
    registration._payment_recorded(  # the event method itself: no rule in the way
        amount_minor=POISON_MINOR, currency="USD", provider="manual", method=None, reference="poison",
        fee_minor=DEFAULT_FEE_POLICY.fee_on(POISON_MINOR), fee_policy=DEFAULT_FEE_POLICY.version,
        seat_granted=True,
    )
    ledger.store.save(registration)
    return event_log.head(ledger.store)


def repair(ledger: Ledger, position: int) -> None:
    """What an operator with superuser rights does: rewrite the stored event
    with the amount that was really paid (the append-only trigger is off
    for this session only)."""
    recorder = ledger.store.recorder
    assert isinstance(recorder, PostgresApplicationRecorder)
    (stored,) = recorder.select_notifications(start=position, limit=1)
    event = ledger.store.mapper.to_domain_event(stored)
    assert isinstance(event, Registration.PaymentRecorded)
    fixed = copy.copy(event)
    fixed.__dict__.update(amount_minor=100, fee_minor=5)  # what the mapper stores is the event's __dict__
    state = ledger.store.mapper.to_stored_event(fixed).state
    with ledger.db.transaction() as conn:
        conn.execute("SET LOCAL session_replication_role = replica")
        table = sql.Identifier(recorder.events_table_name)
        conn.execute(sql.SQL("UPDATE {} SET state = %s WHERE notification_id = %s").format(table),
                     (state, position))


def test_a_poisoned_event_is_reported_other_workers_go_on_and_the_view_recovers(
    fresh_ledger: Ledger, tmp_path: Path, workers: Any
) -> None:
    ledger = fresh_ledger
    client = create_app(ledger).test_client()
    _, event_id = organizer_with_event(ledger, price=Money(4900, "USD"))
    first = paid_registration(ledger, event_id, 1)
    workers("projections")
    workers("notify")

    def ready() -> tuple[int, dict[str, Any]]:
        r = client.get("/readyz")
        return r.status_code, r.get_json()

    def consumer(name: str) -> dict[str, Any]:
        return next((c for c in ready()[1]["consumers"] if c["name"] == name), {})

    head = event_log.head(ledger.store)
    wait_until(lambda: consumer("projections").get("position") == head and consumer("notify").get("position") == head,
               timeout=30, what="both workers caught up")
    assert ready()[0] == 200

    poison = write_poison(ledger, first)
    later = paid_registration(ledger, event_id, 2)  # its payment comes after the poison

    # The runner fails on it, retries, and says so -- to another process.
    failing = wait_until(lambda: consumer("projections").get("state") == "failing" and consumer("projections"),
                         timeout=30, what="/readyz to report the failing runner")
    status, body = ready()
    assert status == 503 and body["status"] == "unavailable" and body["stuck"] == ["projections"]
    assert (failing["failing_event"], failing["event_type"], failing["error_class"]) == (
        poison, "PaymentRecorded", "NumericValueOutOfRange")
    assert failing["failing_after"] < poison and failing["failing_since"] and failing["position"] < poison
    assert "out of range" in failing["error"]

    # Other workers go on: notify passes the poison and plans the later e-mails.
    newest = event_log.head(ledger.store)
    wait_until(lambda: consumer("notify").get("position") == newest, timeout=30, what="notify past the poison")
    assert consumer("notify")["state"] == "ok"
    # Later payments are not in who-paid while the view is stuck.
    page = client.get(f"/v1/events/{event_id}/participants", headers=bearer(
        api_tokens.create_token(ledger.db, role="finance"))).get_json()
    assert later not in {i["registration_id"] for i in page["items"]}

    # `ledger status` shows it, and so does its JSON.
    shown = ledger_cli(ledger, tmp_path, "status")
    assert shown.returncode == 0, shown.stderr
    line = next(line for line in shown.stdout.splitlines() if line.startswith("projections:") and "FAILING" in line)
    assert f"event {poison} (PaymentRecorded)" in line and "NumericValueOutOfRange" in line
    assert any(line.startswith("notify:") and " ok " in line for line in shown.stdout.splitlines()), shown.stdout
    as_json = json.loads(ledger_cli(ledger, tmp_path, "status", "--json").stdout)
    assert {c["name"]: c["state"] for c in as_json["consumers"]} == {"notify": "ok", "projections": "failing"}

    # `ledger rebuild` says what stops it, without a traceback.
    rebuilt = ledger_cli(ledger, tmp_path, "rebuild", "--no-progress")
    assert rebuilt.returncode == 1, rebuilt.stderr
    assert f"stopped at position {poison} (PaymentRecorded): OverflowError" in rebuilt.stderr  # its binary COPY
    assert "Traceback" not in rebuilt.stderr and rebuilt.stdout == ""

    # The cause removed, the runner recovers by itself (backoff, no restart).
    repair(ledger, poison)
    wait_until(lambda: ready()[0] == 200, timeout=45, what="/readyz ready again")
    recovered = consumer("projections")
    assert recovered["state"] == "ok" and recovered["failures"] == 0 and recovered["error_class"] is None
    wait_until(lambda: consumer("projections").get("lag") == 0, timeout=15, what="views caught up")
    page = client.get(f"/v1/events/{event_id}/participants", headers=bearer(
        api_tokens.create_token(ledger.db, role="finance"))).get_json()
    items = {i["registration_id"]: i for i in page["items"]}
    assert items[later]["status"] == "paid"
    assert items[first]["paid"] == {"amount": "50.00", "currency": "USD"}  # 49.00 + the repaired 1.00
