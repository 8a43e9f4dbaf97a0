"""The organizer is told by e-mail about disputes, reversals and failed refunds
(issue 18 item 2) -- at its contact e-mail, in its language, once per fact --
as received by a real SMTP server, from facts recorded through Stripe's
webhooks (the contract server, real signatures) or the service."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from ledger import connections
from ledger.container import Ledger
from ledger.event_log import head
from ledger.money import Money
from ledger.providers.registry import ProviderEndpoints, mask
from ledger.scope import ANYONE
from tests.contracts.fixtures import stripe_server  # noqa: F401  (a fixture, used by name)
from tests.contracts.stripe_contract import StripeContractServer
from tests.support.notify_world import World, running
from tests.support.smtp import SmtpTestServer
from tests.support.waiting import wait_until

ORGANIZER_MAIL = "billing@acme.example"


def caught_up(world: World) -> None:
    wait_until(lambda: world.position() == head(world.ledger.store), what="the planner to catch up")


def organizer_rows(world: World) -> list[tuple[str, str | None, str]]:
    return [(row["kind"], row["organizer_id"], row["recipient"]) for row in world.outbox()
            if row["organizer_id"] is not None]


class StripeShop:
    """An organizer selling through the Stripe contract server, paid for by
    one participant; provider facts arrive as signed webhooks."""

    def __init__(self, ledger: Ledger, server: StripeContractServer, *, country: str, email: str | None,
                 name: str, currency: str) -> None:
        self.ledger, self.server = ledger, server
        ledger.providers.point_at(ProviderEndpoints(stripe_api_base=server.base_url, timeout_seconds=2.0))
        service = ledger.service
        organizer = service.register_organizer(name=name, country=country, plan_size=10, email=email)
        self.organizer_id = oid = str(organizer.id)
        creds = server.credentials()
        _, self.connection_id = service.connect_provider(
            oid, provider="stripe", masked=mask("stripe", creds),
            store_secrets=lambda cid: connections.store_secrets(
                ledger.db, ledger.secret_box, connection_id=cid, organizer_id=oid, creds=creds),
        )
        event = service.create_event(
            organizer_id=oid, title="Pricing webinars that sell", description="",
            sessions=[datetime(2037, 12, 1, 17, tzinfo=UTC)], timezone="Europe/Warsaw", permanent=False,
            price=Money(4900, currency), provider="stripe",
        )
        registration = service.register_participant(str(event.id), name="Ada Lovelace",
                                                     email="ada@example.test", fields={})
        registration, _ = ledger.checkout.start(registration)
        assert registration.checkout is not None
        self.registration_id = str(registration.id)
        self.session_id = registration.checkout["reference"]
        self.webhook("checkout.session.completed", server.complete(self.session_id))

    def webhook(self, event_type: str, obj: dict[str, object], *, again: bool = False) -> None:
        event = self.server.event(event_type, obj)
        headers, body = self.server.signed(event)
        times = 2 if again else 1
        for _ in range(times):  # a duplicate delivery: the very same signed event
            self.ledger.notifications.receive("stripe", self.connection_id, headers, body)

    def lose_dispute(self) -> None:
        dispute = self.server.dispute(self.session_id)
        self.webhook("charge.dispute.created", dispute)
        self.webhook("charge.dispute.funds_withdrawn", dispute)
        closed = self.server.close_dispute(dispute["id"], "lost")
        self.webhook("charge.dispute.closed", closed, again=True)
        # Stripe may also send the closing again as a new event (another id): still one fact.
        self.webhook("charge.dispute.closed", closed)


def test_the_organizer_is_told_of_a_lost_dispute_once_even_after_duplicate_webhooks(
    world: World, smtp_server: SmtpTestServer, stripe_server: StripeContractServer  # noqa: F811
) -> None:
    shop = StripeShop(world.ledger, stripe_server, country="US", email=ORGANIZER_MAIL, name="Acme Webinars",
                      currency="USD")
    shop.lose_dispute()
    with running(world.ledger):
        caught_up(world)
        smtp_server.wait_for(4)  # the participant's confirmation, three to the organizer
        mails = smtp_server.settle()
    assert len(mails) == 4
    assert organizer_rows(world) == [
        ("organizer_dispute_opened", shop.organizer_id, ORGANIZER_MAIL),
        ("organizer_funds_withdrawn", shop.organizer_id, ORGANIZER_MAIL),
        ("organizer_dispute_lost", shop.organizer_id, ORGANIZER_MAIL),
    ]
    opened, withdrawn, lost = smtp_server.to(ORGANIZER_MAIL)
    assert [m.subject for m in (opened, withdrawn, lost)] == [
        "Payment disputed: “Pricing webinars that sell”",
        "Money withdrawn for a dispute: “Pricing webinars that sell”",
        "Dispute lost: “Pricing webinars that sell”",
    ]
    assert lost.message["To"] == f"Acme Webinars <{ORGANIZER_MAIL}>"
    assert "Webinar Ledger" in lost.message["From"]
    assert lost.message["Content-Language"] == "en"
    for body in (lost.text, lost.html):
        assert "was decided for the payer" in body
        assert "49.00 USD" in body
        assert "Ada Lovelace" in body and shop.registration_id in body  # what who-paid already shows
        assert "ada@example.test" not in body  # never the participant's address
        assert "access token no longer work" in body
    assert "Reason given: fraudulent" in opened.text
    assert "Service fee" not in opened.text
    assert "The service fee on this money is no longer charged: 2.45 USD given back." in withdrawn.text
    # The participant's own mail is untouched: only the confirmation went to them.
    assert [m.subject for m in smtp_server.to("ada@example.test")] == [
        "Your ticket for “Pricing webinars that sell”"]


def test_a_polish_organizer_is_told_in_polish(
    world: World, smtp_server: SmtpTestServer, stripe_server: StripeContractServer  # noqa: F811
) -> None:
    shop = StripeShop(world.ledger, stripe_server, country="PL", email="biuro@szkolenia.example",
                      name="Szkolenia Kowalski", currency="PLN")
    shop.lose_dispute()
    with running(world.ledger):
        caught_up(world)
        smtp_server.wait_for(4)
        smtp_server.settle()
    *_, lost = smtp_server.to("biuro@szkolenia.example")
    assert lost.subject == "Spór przegrany: „Pricing webinars that sell”"
    assert lost.message["Content-Language"] == "pl"
    assert "Spór o płatność 49,00 PLN za „Pricing webinars that sell” został rozstrzygnięty na korzyść " \
           "płacącego" in lost.text
    assert "Pobrane przez operatora: 49,00 PLN" in lost.text
    assert "Data: " in lost.text and "(Europe/Warsaw, UTC+01:00)" in lost.text


def test_an_organizer_without_a_contact_email_gets_none_and_nothing_breaks(
    world: World, smtp_server: SmtpTestServer, stripe_server: StripeContractServer  # noqa: F811
) -> None:
    shop = StripeShop(world.ledger, stripe_server, country="US", email=None, name="Quiet Org", currency="USD")
    shop.lose_dispute()
    with running(world.ledger):
        caught_up(world)
        smtp_server.wait_for(1)
        mails = smtp_server.settle()
    assert organizer_rows(world) == []
    assert [m.rcpt_tos for m in mails] == [["ada@example.test"]]
    assert world.ledger.service.registration(shop.registration_id).status == "dispute_lost"


def test_every_provider_correction_is_told_and_an_erased_participant_is_not_named(
    world: World, smtp_server: SmtpTestServer
) -> None:
    """Reversal and failed refund through the service; the participant erased
    before the worker runs: the organizer still hears, about "a participant"."""
    service = world.ledger.service
    org = world.organizer()
    service.change_contact(org, ORGANIZER_MAIL)
    ev = world.event(org, title="Money Talk")
    refunded = world.register(ev, "rita@example.com", name="Rita Refund")
    reversed_ = world.register(ev, "rob@example.com", name="Rob Reversed")
    won = world.register(ev, "wendy@example.com", name="Wendy Won")
    for rid in (refunded, reversed_, won):
        world.pay(rid)
    service.record_refund(refunded, amount=Money.parse("49.00", "USD"), reference="re-1")
    service.record_refund_failure(refunded, reference="re-1")
    service.record_refund_failure(refunded, reference="re-1")  # again: nothing new
    service.record_reversal(reversed_, reversal_id="rv-1", reference=f"bank-{reversed_[:8]}",
                            amount=Money.parse("49.00", "USD"))
    service.record_dispute(won, dispute_id="dp-1", provider="manual", reference=f"bank-{won[:8]}",
                           amount=Money.parse("49.00", "USD"), reason=None)
    service.resolve_dispute(won, dispute_id="dp-1", outcome="won")
    world.ledger.erasures.erase([reversed_], scope=ANYONE, erasure_id=uuid.uuid4())
    with running(world.ledger):
        caught_up(world)
        wait_until(lambda: len(smtp_server.to(ORGANIZER_MAIL)) == 4, what="four e-mails to the organizer")
        smtp_server.settle()
    subjects = sorted(m.subject for m in smtp_server.to(ORGANIZER_MAIL))
    assert subjects == ["Dispute won: “Money Talk”", "Payment disputed: “Money Talk”",
                        "Payment reversed: “Money Talk”", "Refund failed: “Money Talk”"]
    (failed,) = [m for m in smtp_server.to(ORGANIZER_MAIL) if m.subject.startswith("Refund failed")]
    assert "Refund reference: re-1" in failed.text and "Owed back: 49.00 USD" in failed.text
    (gone,) = [m for m in smtp_server.to(ORGANIZER_MAIL) if m.subject.startswith("Payment reversed")]
    assert "Participant: a participant (personal data erased)" in gone.text
    assert "Rob" not in gone.text and "rob@example.com" not in gone.text
    assert smtp_server.to("rob@example.com") == []  # the erased participant is sent nothing more
    with world.ledger.db.transaction() as conn:
        names = conn.execute("SELECT context ->> 'name' FROM notify_outbox WHERE registration_id = %s",
                             (reversed_,)).fetchall()
    assert names and all(name is None for (name,) in names)


def test_a_refused_organizer_address_fails_its_row_only(world: World, smtp_server: SmtpTestServer) -> None:
    """A permanent refusal of the organizer's address closes that row as
    failed; it is not an EmailDeliveryFailed of the participant, and the
    participant's own e-mails still go out."""
    service = world.ledger.service
    org = world.organizer()
    service.change_contact(org, "gone@acme.example")
    smtp_server.reject("gone@acme.example")
    ev = world.event(org, title="Money Talk")
    rid = world.register(ev, "dora@example.com", name="Dora Dispute")
    world.pay(rid)
    service.record_dispute(rid, dispute_id="dp-9", provider="manual", reference=f"bank-{rid[:8]}",
                           amount=Money.parse("49.00", "USD"), reason="fraudulent")
    service.resolve_dispute(rid, dispute_id="dp-9", outcome="lost")
    with running(world.ledger):
        caught_up(world)
        wait_until(lambda: {r["state"] for r in world.outbox()} == {"sent", "failed"},
                   what="the organizer's rows to fail and the participant's to go")
    states = [(r["kind"], r["state"]) for r in world.outbox()]
    assert states == [("confirmation", "sent"), ("organizer_dispute_opened", "failed"),
                      ("organizer_dispute_lost", "failed")]
    assert service.registration(rid).email_failures == []
    assert [m.subject for m in smtp_server.to("dora@example.com")] == ["Your ticket for “Money Talk”"]
