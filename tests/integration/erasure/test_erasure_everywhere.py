"""Erasure (R24) against the real parts: after ``ledger.erasures.erase`` the
notify worker sends nothing more to the participant (queued e-mails dropped),
a Kafka replay from the log publishes them as erased, ``ledger rebuild``
rebuilds the views with them erased, and ``ledger verify`` still passes --
also for a registration stored in clear before sealing existed."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from ledger import event_log
from ledger.application import LedgerStore
from ledger.container import Ledger
from ledger.database import eventsourcing_env
from ledger.domain.registration import Registration
from ledger.erasure import destroy_keys
from ledger.proof.sealer import Sealer
from ledger.scope import ANYONE
from projections.rebuild import rebuild
from projections.runner import ProjectionRunner
from tests.support.kafka import read_topic
from tests.support.notify_world import World, running
from tests.support.relay import TEST_OPTIONS, RunningRelay, with_settings
from tests.support.smtp import SmtpTestServer
from tests.support.waiting import wait_until
from workers.broker import EmbeddedBroker

ROOT = Path(__file__).resolve().parents[3]


def ledger_cli(ledger: Ledger, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update({"PYTHONPATH": str(ROOT), "LEDGER_DATABASE_URL": ledger.database_url,
                "LEDGER_DATA_DIR": str(ledger.settings.data_dir),
                "LEDGER_SECRET_KEY": ledger.settings.secret_key.hex()})
    return subprocess.run([sys.executable, "-m", "entrypoints.cli", *args], env=env, capture_output=True,
                          text=True, timeout=120, cwd=ROOT)


def stored_state(ledger: Ledger, rid: str, version: int = 1) -> bytes:
    with psycopg.connect(ledger.database_url) as conn:
        row = conn.execute("SELECT state FROM ledger_events WHERE originator_id = %s AND originator_version = %s",
                           (UUID(rid), version)).fetchone()
    assert row is not None
    return bytes(row[0])


def who_paid_row(ledger: Ledger, rid: str) -> dict[str, Any]:
    with ledger.db.transaction() as conn:
        cursor = conn.execute("SELECT name, email, erased, paid_minor, status FROM projections.who_paid"
                              " WHERE registration_id = %s", (UUID(rid),))
        names = [c.name for c in cursor.description or ()]
        row = cursor.fetchone()
    assert row is not None
    return dict(zip(names, row, strict=True))


@pytest.fixture
def everything(fresh_ledger: Ledger, smtp_server: SmtpTestServer, kafka_broker: EmbeddedBroker,
               kafka_topic: str) -> Ledger:
    """A fresh ledger sending e-mail through the test SMTP server and
    publishing personal data (LEDGER_KAFKA_INCLUDE_PII) to its own topic."""
    settings = dataclasses.replace(fresh_ledger.settings, smtp_url=smtp_server.url,
                                   kafka_bootstrap=kafka_broker.bootstrap, kafka_topic=kafka_topic,
                                   kafka_include_pii=True)
    return dataclasses.replace(fresh_ledger, settings=settings)


def test_sealed_at_rest_then_erased_everywhere_and_the_proof_holds(
    everything: Ledger, smtp_server: SmtpTestServer, kafka_broker: EmbeddedBroker, tmp_path: Path,
) -> None:
    ledger = everything
    world = World(ledger)
    event = world.event(world.organizer())
    gone = world.register(event, "erin@example.org", name="Erin Erased")
    kept = world.register(event, "kim@example.org", name="Kim Kept")
    # At rest: no personal data in clear in the event store.
    for rid, name, email in ((gone, "Erin Erased", "erin@example.org"), (kept, "Kim Kept", "kim@example.org")):
        state = stored_state(ledger, rid)
        assert name.encode() not in state and email.encode() not in state and b'"sealed"' in state

    relay = RunningRelay(ledger, TEST_OPTIONS)
    try:
        relay.wait_published()
    finally:
        relay.stop()
    ProjectionRunner(ledger).catch_up()
    assert who_paid_row(ledger, gone)["name"] == "Erin Erased"
    signed = ledger_cli(ledger, "checkpoint")  # an auditor keeps the log signed before the erasure
    assert signed.returncode == 0, signed.stderr
    checkpoint = tmp_path / "before-erasure.json"
    checkpoint.write_text(signed.stdout)

    # Both paid while the mail server is down: both confirmations queued.
    smtp_server.stop()
    world.pay(gone)
    world.pay(kept)
    with running(ledger):
        wait_until(lambda: len([r for r in world.outbox() if r["state"] == "pending"]) == 2, timeout=20)
    receipt = ledger.erasures.erase([gone], scope=ANYONE, erasure_id=uuid4())
    assert [r.registration_id for r in receipt.registrations] == [gone]
    assert receipt.purged["notify_outbox.pending"] == 1
    smtp_server.start()
    world.resend(gone)  # R12 still allows it (the ticket stays): nobody is written to
    world.resend(kept)
    with running(ledger):
        wait_until(lambda: len(smtp_server.messages) >= 2, timeout=30)
        time.sleep(1.0)  # a wrongly planned e-mail would go out now
    recipients = [to for m in smtp_server.messages for to in m.rcpt_tos]
    assert recipients == ["kim@example.org", "kim@example.org"]
    assert all("erin" not in str(row).lower() for row in world.outbox())

    # Amounts and status stay; the aggregate, the views and a rebuild show erased.
    registration = ledger.service.registration(gone)
    assert (registration.name, registration.email, registration.erased) == (None, None, True)
    assert registration.status == "paid" and registration.paid_minor == registration.price_minor
    ProjectionRunner(ledger).catch_up()
    assert who_paid_row(ledger, gone) == {"name": None, "email": None, "erased": True,
                                          "paid_minor": registration.price_minor, "status": "paid"}
    rebuilt = rebuild(ledger, restart=True)
    assert rebuilt.position > 0
    assert who_paid_row(ledger, gone)["erased"] is True and who_paid_row(ledger, gone)["name"] is None
    assert who_paid_row(ledger, kept)["name"] == "Kim Kept"

    # A Kafka replay: the relay publishes the whole log again to a new topic.
    replay_topic = f"{ledger.settings.kafka_topic}.replay"
    replaying = with_settings(ledger, kafka_topic=replay_topic)
    relay = RunningRelay(replaying, TEST_OPTIONS)
    try:
        relay.wait_published()
    finally:
        relay.stop()
    messages = [m.event for m in read_topic(
        kafka_broker.bootstrap, replay_topic,
        until=lambda ms: any(m.event["type"] == "PersonalDataErased" for m in ms))]
    registered = {m["aggregate_id"]: m for m in messages if m["type"] == "ParticipantRegistered"}
    assert registered[gone]["data"]["name"] is None and registered[gone]["data"]["email"] is None
    assert registered[gone]["data"]["erased"] is True and registered[gone]["data"]["price_minor"] > 0
    assert registered[kept]["data"]["name"] == "Kim Kept" and registered[kept]["data"]["erased"] is False
    [erased_message] = [m for m in messages if m["type"] == "PersonalDataErased"]
    assert erased_message["aggregate_id"] == gone and "erin" not in str(erased_message).lower()

    # The proof: every hash still verifies, and so does the checkpoint signed before.
    Sealer(ledger.db, ledger.store.recorder, ledger.database_url).catch_up()
    verified = ledger_cli(ledger, "verify")
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith("OK ")
    against = ledger_cli(ledger, "verify", "--checkpoint", str(checkpoint))
    assert against.returncode == 0, against.stderr


def test_a_registration_stored_in_clear_before_sealing_is_erased_too(fresh_ledger: Ledger) -> None:
    """Events stored before sealing existed hold the fields in clear: they
    are read as they are, and as erased after an erasure (the clear text
    stays in the immutable row: docs/audit.md)."""
    ledger = fresh_ledger
    world = World(ledger)
    event_id = world.event(world.organizer())
    paid_event = ledger.service.event(event_id)
    # What the release before sealing wrote: a store without a keyring.
    old_store = LedgerStore(env=eventsourcing_env(ledger.database_url, pool_size=2))
    try:
        legacy = Registration.register(
            id=uuid4(), event_id=event_id, organizer_id=paid_event.organizer_id, name="Olga Old",
            email="olga@example.org", fields={"company": "Old Co"}, language=None,
            price_minor=paid_event.price_minor, currency=paid_event.currency, provider="manual",
        )
        old_store.save(legacy)
    finally:
        old_store.close()
    rid = str(legacy.id)
    assert b"Olga Old" in stored_state(ledger, rid)
    world.pay(rid)
    assert ledger.service.registration(rid).name == "Olga Old"

    ledger.erasures.erase([rid], scope=ANYONE, erasure_id=uuid4())
    fresh = ledger.service.registration(rid)
    assert (fresh.name, fresh.email, fresh.fields, fresh.erased) == (None, None, None, True)
    assert fresh.status == "paid"
    items = event_log.read_aggregate(ledger.store, rid, after=0, limit=50)
    registered = next(i for i in items if i.type == "ParticipantRegistered")
    assert registered.data["name"] is None and registered.data["erased"] is True
    rebuild(ledger, restart=True)
    assert who_paid_row(ledger, rid)["erased"] is True and who_paid_row(ledger, rid)["name"] is None
    assert b"Olga Old" in stored_state(ledger, rid)  # the immutable row keeps its clear text
    Sealer(ledger.db, ledger.store.recorder, ledger.database_url).catch_up()
    verified = ledger_cli(ledger, "verify")
    assert verified.returncode == 0, verified.stderr


def test_an_erasure_stopped_after_destroying_the_key_is_finished_by_a_retry(fresh_ledger: Ledger) -> None:
    """Step 1 committed, then the process died (before the event): the data
    already reads as erased, and asking again records the event once."""
    ledger = fresh_ledger
    world = World(ledger)
    rid = world.register(world.event(world.organizer()), "cleo@example.org", name="Cleo Crash")
    with ledger.db.transaction() as conn:
        destroy_keys(conn, [rid], str(uuid4()))
    assert ledger.store.keyring is not None
    ledger.store.keyring.forget([rid])
    [item] = [i for i in event_log.read_aggregate(ledger.store, rid, after=0, limit=10)
              if i.type == "ParticipantRegistered"]
    assert item.data["name"] is None and item.data["erased"] is True
    receipt = ledger.erasures.erase([rid], scope=ANYONE, erasure_id=uuid4())
    assert receipt.registrations[0].already_erased is False and receipt.registrations[0].position
    again = ledger.erasures.erase([rid], scope=ANYONE, erasure_id=uuid4())
    assert again.registrations[0].already_erased is True
    assert again.registrations[0].position == receipt.registrations[0].position
    types = [i.type for i in event_log.read_aggregate(ledger.store, rid, after=0, limit=50)]
    assert types.count("PersonalDataErased") == 1
