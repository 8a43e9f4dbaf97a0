"""Delivery under failure: an SMTP outage then recovery, a recipient's temporary
4xx, a permanent 5xx — each fact still ends as exactly one e-mail, or as a
recorded failure."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.notify.conftest import World, running, wait_until
from tests.support.smtp import SmtpTestServer
from workers import notify
from workers.notify_sender import DeliveryFailure


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


def test_permanent_rejection_is_recorded_and_later_mail_still_flows(
    world: World, smtp_server: SmtpTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded: list[DeliveryFailure] = []
    monkeypatch.setattr(notify, "record_delivery_failure", lambda ledger, failure: recorded.append(failure))
    org = world.organizer()
    ev = world.event(org)
    bad = world.register(ev, "Nobody@Example.com")
    good = world.register(ev, "good@example.com")
    smtp_server.reject("nobody@example.com", 550, "5.1.1 <nobody@example.com>: mailbox does not exist")
    with running(world.ledger):
        world.pay(bad)
        world.pay(good)
        world.resend(bad)  # the next fact for the same registration is still attempted
        wait_until(lambda: len(recorded) == 2, what="both failures to be recorded")
        [mail] = smtp_server.wait_for(1)
    assert mail.rcpt_tos == ["good@example.com"]
    first, second = recorded
    assert (first.registration_id, first.kind, first.smtp_code) == (bad, "confirmation", 550)
    assert first.reason == "550 5.1.1 <recipient>: mailbox does not exist"  # no address in events
    assert second.kind == "resend"
    states = {(r["registration_id"], r["kind"]): (r["state"], r["smtp_code"]) for r in world.outbox()}
    assert states[(bad, "confirmation")] == ("failed", 550)
    assert states[(good, "confirmation")] == ("sent", None)


def test_a_failure_that_cannot_be_recorded_is_retried_not_lost(
    world: World, smtp_server: SmtpTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[DeliveryFailure] = []

    def flaky(ledger: Any, failure: DeliveryFailure) -> None:
        calls.append(failure)
        if len(calls) == 1:
            raise RuntimeError("event store briefly unavailable")

    monkeypatch.setattr(notify, "record_delivery_failure", flaky)
    org = world.organizer()
    ev = world.event(org)
    bad = world.register(ev, "bounce@example.com")
    smtp_server.reject("bounce@example.com")
    with running(world.ledger):
        world.pay(bad)
        wait_until(lambda: world.outbox() and world.outbox()[0]["state"] == "failed",
                   what="the failure to be recorded on the second try")
    assert len(calls) == 2 and calls[0].message_id == calls[1].message_id


@pytest.mark.skipif(
    not hasattr(__import__("ledger.service", fromlist=["LedgerService"]).LedgerService,
                "record_email_delivery_failure"),
    reason="waiting for LedgerService.record_email_delivery_failure (see docs/emails.md)",
)
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
