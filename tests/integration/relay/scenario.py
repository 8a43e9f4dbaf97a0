"""Real ledger traffic for the relay tests: every public event type, through
the application service (the same code path as the API)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from ledger.container import Ledger
from ledger.money import Money
from ledger.scope import ANYONE


def full_story(ledger: Ledger, *, participants: int = 3) -> str:
    """One organizer's whole life: plan change, provider, an event edited and
    rescheduled, participants paying, failing, confirmed, rejected, refunded,
    one participant erased, and finally the event cancelled.  Emits every type in PUBLIC_TYPES.
    Returns the organizer id."""
    service = ledger.service
    organizer = service.register_organizer(name="Acme Webinars", country="DE", plan_size=50)
    org_id = str(organizer.id)
    service.change_plan(org_id, 100)
    service.change_contact(org_id, "billing@acme.example")  # issue 18: the organizer's contact e-mail
    service.connect_provider(org_id, provider="manual", masked={}, store_secrets=lambda cid: None)
    starts = datetime.now(UTC) + timedelta(days=30)
    event = service.create_event(
        organizer_id=org_id, title="Ledgers 101", description="intro", sessions=[starts],
        timezone="Europe/Berlin", permanent=False, price=Money(4900, "EUR"), provider="manual",
    )
    event_id = str(event.id)
    service.edit_event(event_id, {"title": "Ledgers 101 (live)"}, scope=ANYONE)
    service.reschedule(event_id, starts_at=starts + timedelta(hours=2), session_id=None, scope=ANYONE)
    regs = [
        service.register_participant(
            event_id, name=f"Person {i}", email=f"p{i}@example.org", fields={"company": "X"}
        )
        for i in range(max(participants, 4))
    ]
    paid, failed, rejected = (str(r.id) for r in regs[:3])
    service.start_checkout(paid, provider="manual", url="https://pay.test/1", reference="chk-1")
    service.record_payment(paid, amount=Money(4900, "EUR"), provider="manual", reference="pay-1")
    service.confirm(paid, scope=ANYONE)
    service.request_resend(paid, scope=ANYONE)
    service.record_email_delivery_failure(
        paid, message_id="<m1@ledger.test>", kind="resend", smtp_code=552, reason="mailbox full"
    )
    service.record_payment_mismatch(failed, amount=Money(100, "EUR"), provider="manual", reference="mm-1")
    service.record_payment_failure(failed, reason="card_declined", reference="chk-2")
    service.reject(rejected, reason="duplicate", scope=ANYONE)
    # Provider corrections (issue 18): a dispute won, a refund that failed, a reversal.
    amount = Money(4900, "EUR")
    service.record_dispute(paid, dispute_id="dp_1", provider="manual", reference="pay-1", amount=amount,
                           reason="fraudulent")
    service.record_funds_withdrawn(paid, dispute_id="dp_1", amount=amount)
    service.record_funds_reinstated(paid, dispute_id="dp_1", amount=amount)
    service.resolve_dispute(paid, dispute_id="dp_1", outcome="won")
    service.record_refund(paid, amount=Money(1000, "EUR"), reference="ref-0", ends_access=False)
    service.record_refund_failure(paid, reference="ref-0")
    service.record_refund(paid, amount=amount, reference="ref-1")
    reversed_one = str(regs[3].id)
    service.record_payment_authorization(reversed_one, amount=amount, provider="manual", reference="pay-4")
    service.record_payment(reversed_one, amount=amount, provider="manual", reference="pay-4")
    service.record_reversal(reversed_one, reversal_id="rv_1", reference="pay-4", amount=amount)
    ledger.erasures.erase([failed], scope=ANYONE, erasure_id=uuid4())  # R24: PersonalDataErased
    service.cancel_event(event_id, reason="speaker ill", scope=ANYONE)
    return org_id


def busy_event(ledger: Ledger, *, registrations: int, payments: bool = True) -> list[str]:
    """Many registrations on one event (interleaved aggregates); returns ids."""
    service = ledger.service
    organizer = service.register_organizer(name="Busy", country="US", plan_size=1_000_000)
    org_id = str(organizer.id)
    service.connect_provider(org_id, provider="manual", masked={}, store_secrets=lambda cid: None)
    event = service.create_event(
        organizer_id=org_id, title="Big", description="", sessions=[datetime.now(UTC) + timedelta(days=3)],
        timezone="UTC", permanent=True, price=Money(1000, "USD"), provider="manual",
    )
    ids = []
    for i in range(registrations):
        reg = service.register_participant(str(event.id), name=f"N{i}", email=f"n{i}@x.org", fields={})
        if payments:
            service.record_payment(str(reg.id), amount=Money(1000, "USD"), provider="manual", reference=f"r{i}")
        ids.append(str(reg.id))
    return ids
