"""Payers owed money are told (R17, issue 12 item 5) -- one e-mail per fact,
EN/PL -- and a partial refund keeps the participant's access (R19): the token
stays, the refund e-mail says so.  As received by a real SMTP server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ledger import access_tokens
from ledger.event_log import head, read_aggregate
from ledger.money import Money
from tests.support.notify_world import World, running
from tests.support.smtp import SmtpTestServer
from tests.support.waiting import wait_until


def caught_up(world: World) -> None:
    wait_until(lambda: world.position() == head(world.ledger.store), what="the planner to catch up")


def kinds(world: World, registration_id: str) -> list[str]:
    return [row["kind"] for row in world.outbox() if row["registration_id"] == registration_id]


def test_a_second_payment_and_a_payment_after_the_cancel_are_each_told_once(
    world: World, smtp_server: SmtpTestServer
) -> None:
    org = world.organizer()
    ev = world.event(org, title="Money Talk", price="49.00")
    twice = world.register(ev, "twice@example.com", name="Tom Twice")
    late = world.register(ev, "late@example.com", name="Lea Late")
    with running(world.ledger):
        world.pay(twice, reference="first")
        world.pay(twice, reference="second")
        world.pay(twice, reference="second")  # the same fact again: nothing new
        world.cancel(ev)
        world.pay(late, reference="after-cancel")
        smtp_server.wait_for(5)
        mails = smtp_server.settle()
    assert kinds(world, twice) == ["confirmation", "owed_back", "cancellation"]
    assert kinds(world, late) == ["cancellation", "owed_back"]
    assert len(mails) == 5

    _, double, cancelled = smtp_server.to("twice@example.com")
    (second,) = [i for i in read_aggregate(world.ledger.store, twice, after=0, limit=50)
                 if i.type == "PaymentRecorded" and i.data["reference"] == "second"]
    assert double.subject == "Money owed back to you for “Money Talk”"
    assert double.message_id == f"<owed_back.{second.id}.{twice}@ledger.test>"  # names the fact
    for body in (double.text, double.html):
        assert "we received another payment of 49.00 USD for “Money Talk”" in body
        assert "Acme Webinars owes you 49.00 USD and will refund it the same way you paid" in body
        assert "Your ticket, Join link and access token stay valid." in body
    assert "owes you 98.00 USD" in cancelled.text  # the cancellation tells the whole amount

    _, after = smtp_server.to("late@example.com")
    assert "we received your payment of 49.00 USD for “Money Talk” after the event was cancelled." in after.text
    assert "Owed back to you: 49.00 USD" in after.text
    assert "stay valid" not in after.text


def test_money_that_found_no_seat_is_told_in_polish(world: World, smtp_server: SmtpTestServer) -> None:
    now = [datetime(2026, 11, 1, tzinfo=UTC)]
    world.ledger.service.clock = lambda: now[0]
    service = world.ledger.service
    org = service.register_organizer(name="Szkolenia", country="PL", plan_size=1)
    service.connect_provider(str(org.id), provider="manual", masked={}, store_secrets=lambda cid: None)
    ev = world.event(str(org.id), title="Podatki", price="300.50", currency="PLN", timezone="Europe/Warsaw")
    slow = world.register(ev, "wolny@example.pl", name="Anna Wolna")
    now[0] += timedelta(hours=1)  # her seat hold lapses and the only seat goes to someone else
    fast = world.register(ev, "szybki@example.pl", name="Jan Szybki")
    with running(world.ledger):
        world.pay(fast)
        world.pay(slow)
        smtp_server.wait_for(2)
        smtp_server.settle()
    assert kinds(world, slow) == ["owed_back"]  # no ticket: no confirmation
    [mail] = smtp_server.to("wolny@example.pl")
    assert mail.subject == "Kwota do zwrotu za „Podatki”"
    assert mail.message["Content-Language"] == "pl"
    assert ("otrzymaliśmy Twoją płatność 300,50 PLN za „Podatki”, ale wpłynęła, gdy nie było już wolnych "
            "miejsc, więc nie kupiła biletu.") in mail.text
    assert "organizator Szkolenia zwróci Ci 300,50 PLN tą samą drogą" in mail.text


def test_a_part_payment_waiting_for_the_rest_is_not_told_but_the_excess_is(
    world: World, smtp_server: SmtpTestServer
) -> None:
    org = world.organizer()
    ev = world.event(org, price="49.00")
    rid = world.register(ev, "parts@example.com")
    service = world.ledger.service
    with running(world.ledger):
        service.record_payment(rid, amount=Money.parse("20.00", "USD"), provider="manual", reference="a")
        service.record_payment(rid, amount=Money.parse("40.00", "USD"), provider="manual", reference="b")
        smtp_server.wait_for(2)
        smtp_server.settle()
    assert kinds(world, rid) == ["confirmation", "owed_back"]
    _, excess = smtp_server.to("parts@example.com")
    assert "In all you paid 60.00 USD, more than the price of 49.00 USD. Your place is confirmed." in excess.text
    assert "owes you 11.00 USD" in excess.text


def test_a_partial_refund_keeps_the_token_and_says_so_a_full_one_ends_access(
    world: World, smtp_server: SmtpTestServer
) -> None:
    org = world.organizer()
    ev = world.event(org, price="49.00")
    rid = world.register(ev, "ann@example.com")
    service = world.ledger.service
    token = world.token(rid)

    def access() -> access_tokens.Access | None:
        with world.ledger.db.transaction() as conn:
            return access_tokens.find(conn, token)

    with running(world.ledger):
        world.pay(rid)
        service.record_refund(rid, amount=Money.parse("10.00", "USD"), reference="goodwill")
        smtp_server.wait_for(2)
        caught_up(world)
        assert access() is not None  # the first release revoked it here
        service.record_refund(rid, amount=Money.parse("39.00", "USD"), reference="the-rest")
        smtp_server.wait_for(3)
        caught_up(world)
        smtp_server.settle()
    assert access() is None
    _, goodwill, rest = smtp_server.to("ann@example.com")
    assert goodwill.subject == "Refund for “Pricing 101”"
    assert "Acme Webinars has refunded 10.00 USD to you the same way you paid." in goodwill.text
    assert "Your ticket, Join link and access token stay valid." in goodwill.text
    assert "no longer work" not in goodwill.text
    assert "Everything you paid (49.00 USD) has now been refunded." in rest.text
    assert "Any Join link and access token for this event no longer work." in rest.text
