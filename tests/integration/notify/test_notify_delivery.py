"""Delivery under failure: an SMTP outage then recovery, a recipient's temporary
4xx, a permanent 5xx — each fact still ends as exactly one e-mail, or as a
recorded failure."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from eventsourcing.postgres import PostgresAggregateRecorder
from psycopg import sql

from ledger import event_log
from ledger.container import Ledger
from ledger.domain.registration import Registration
from tests.support.notify_world import World, running
from tests.support.smtp import SmtpTestServer
from tests.support.waiting import wait_until


def test_outage_then_recovery_delivers_each_email_once_in_order(world: World,
                                                                smtp_server: SmtpTestServer) -> None:
    org = world.organizer()
    ev = world.event(org)
    a = world.register(ev, "a@example.com")
    b = world.register(ev, "b@example.com")
    smtp_server.stop()  # connections refused from here on
    with running(world.ledger):
        world.pay(a)
        world.pay(b)
        world.reject(a, reason="Changed my mind")  # must not overtake a's confirmation
        rows = wait_until(lambda: [r for r in world.outbox() if r["attempts"] >= 2] and world.outbox(),
                          what="retries during the outage")
        assert all(r["state"] == "pending" for r in rows)
        assert any("ConnectionRefusedError" in (r["last_error"] or "") for r in rows)
        smtp_server.start()
        smtp_server.wait_for(3, timeout=10)
        mails = smtp_server.settle()
    assert len(mails) == 3
    assert len({m.message_id for m in mails}) == 3
    assert [m.subject for m in smtp_server.to("a@example.com")] == [
        "Your ticket for “Pricing 101”", "Your registration for “Pricing 101” was declined"]
    assert all(r["state"] == "sent" for r in world.outbox())


def test_a_recipients_temporary_failure_only_delays_that_recipient(world: World,
                                                                   smtp_server: SmtpTestServer) -> None:
    org = world.organizer()
    ev = world.event(org)
    slow = world.register(ev, "slow@example.com")
    fast = world.register(ev, "fast@example.com")
    smtp_server.defer("slow@example.com", times=2)  # 451 twice, then accepted
    with running(world.ledger):
        world.pay(slow)
        world.pay(fast)
        smtp_server.wait_for(2)
        mails = smtp_server.settle()
    assert [m.rcpt_tos for m in mails] == [["fast@example.com"], ["slow@example.com"]]
    slow_row = next(r for r in world.outbox() if r["registration_id"] == slow)
    assert slow_row["state"] == "sent" and slow_row["attempts"] == 3
    assert slow_row["first_failed_at"] is not None


def stored_failures(world: World) -> list[event_log.LogItem]:
    """The EmailDeliveryFailed events in the event store, in global order."""
    return event_log.read(world.ledger.store, after=0, limit=1000, types=["EmailDeliveryFailed"])


@contextmanager
def event_store_refusing_email_failures(ledger: Ledger) -> Iterator[Callable[[], None]]:
    """Until the yielded ``lift()`` is called, PostgreSQL refuses every insert of
    an EmailDeliveryFailed event (a trigger on the event store's table raises),
    as a database briefly unable to take that write would: the service command
    fails with a database error, not a version conflict."""
    recorder = ledger.store.recorder
    assert isinstance(recorder, PostgresAggregateRecorder)
    table = sql.Identifier(recorder.datastore.schema, recorder.events_table_name)
    topic = event_log.store_topic(Registration.EmailDeliveryFailed)
    with ledger.db.transaction() as conn:
        conn.execute("CREATE FUNCTION test_refuse_email_failure() RETURNS trigger LANGUAGE plpgsql AS $$"
                     " BEGIN RAISE EXCEPTION 'test: EmailDeliveryFailed refused'; END $$")
        conn.execute(sql.SQL("CREATE TRIGGER test_refuse_email_failure BEFORE INSERT ON {} FOR EACH ROW"
                             " WHEN (NEW.topic = {}) EXECUTE FUNCTION test_refuse_email_failure()")
                     .format(table, sql.Literal(topic)))

    def lift() -> None:
        with ledger.db.transaction() as conn:
            conn.execute(sql.SQL("DROP TRIGGER IF EXISTS test_refuse_email_failure ON {}").format(table))
            conn.execute("DROP FUNCTION IF EXISTS test_refuse_email_failure()")

    try:
        yield lift
    finally:
        lift()


def test_permanent_rejection_is_recorded_and_later_mail_still_flows(world: World,
                                                                    smtp_server: SmtpTestServer) -> None:
    org = world.organizer()
    ev = world.event(org)
    bad = world.register(ev, "Nobody@Example.com")
    good = world.register(ev, "good@example.com")
    smtp_server.reject("nobody@example.com", 550, "5.1.1 <nobody@example.com>: mailbox does not exist")
    with running(world.ledger):
        world.pay(bad)
        world.pay(good)
        world.resend(bad)  # the next fact for the same registration is still attempted
        first, second = wait_until(lambda: len(stored_failures(world)) == 2 and stored_failures(world),
                                   what="both failures in the event store")
        [mail] = smtp_server.wait_for(1)
    assert mail.rcpt_tos == ["good@example.com"]
    assert (first.aggregate_id, first.data["kind"], first.data["smtp_code"]) == (bad, "confirmation", 550)
    assert first.data["reason"] == "550 5.1.1 <recipient>: mailbox does not exist"  # no address in events
    assert (second.aggregate_id, second.data["kind"]) == (bad, "resend")
    assert first.actor == second.actor == "worker:notify"
    shown = world.ledger.service.registration(bad).email_failures
    assert [(f["message_id"], f["kind"]) for f in shown] == [
        (first.data["message_id"], "confirmation"), (second.data["message_id"], "resend")]
    states = {(r["registration_id"], r["kind"]): (r["state"], r["smtp_code"]) for r in world.outbox()}
    assert states[(bad, "confirmation")] == ("failed", 550)
    assert states[(good, "confirmation")] == ("sent", None)


def test_a_failure_that_cannot_be_recorded_is_retried_not_lost(world: World,
                                                               smtp_server: SmtpTestServer) -> None:
    org = world.organizer()
    ev = world.event(org)
    bad = world.register(ev, "bounce@example.com")
    smtp_server.reject("bounce@example.com")
    with event_store_refusing_email_failures(world.ledger) as lift, running(world.ledger):
        world.pay(bad)
        # The 550 is known, but while it cannot be recorded the row is not closed: it is retried.
        [row] = wait_until(lambda: [r for r in world.outbox() if r["attempts"] >= 2],
                           what="the unrecordable failure to be retried")
        assert (row["state"], row["smtp_code"]) == ("pending", 550)
        assert stored_failures(world) == []
        lift()
        [row] = wait_until(lambda: [r for r in world.outbox() if r["state"] == "failed"],
                           what="the failure to be recorded once the store takes it")
    [failure] = stored_failures(world)  # exactly one, whatever the number of attempts
    assert (failure.aggregate_id, failure.data["message_id"]) == (bad, row["message_id"])
    assert [f["message_id"] for f in world.ledger.service.registration(bad).email_failures] == [row["message_id"]]


def test_permanent_failure_is_visible_on_the_registration(world: World, smtp_server: SmtpTestServer) -> None:
    org = world.organizer()
    ev = world.event(org)
    bad = world.register(ev, "gone@example.com")
    smtp_server.reject("gone@example.com")
    with running(world.ledger):
        world.pay(bad)
        wait_until(lambda: world.outbox() and world.outbox()[0]["state"] == "failed", what="failure")
    shown = world.ledger.service.registration(bad).as_dict()
    [failure] = shown["email_failures"]
    assert failure["kind"] == "confirmation" and failure["smtp_code"] == 550
    assert "gone@example.com" not in str(failure)
