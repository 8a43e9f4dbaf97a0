"""Issue 11, item 4: a payment or refund reference already recorded is a
repeat only with the same amount; with another amount it is refused with a
stable code, never a silent no-op."""

from __future__ import annotations

import uuid

import pytest

from ledger.domain.registration import Registration
from ledger.errors import PaymentReferenceConflict, RefundReferenceConflict
from ledger.money import Money


def _paid() -> Registration:
    registration = Registration.register(
        id=uuid.uuid4(), event_id="e", organizer_id="o", name="A", email="a@example.test", fields={},
        language=None, price_minor=4900, currency="USD", provider="manual",
    )
    assert registration.record_payment(Money(4900, "USD"), "manual", "bank-1", seat_granted=True)
    return registration


def test_the_same_payment_reference_and_amount_is_a_repeat_another_amount_a_conflict() -> None:
    registration = _paid()
    version = registration.version
    assert registration.record_payment(Money(4900, "USD"), "manual", "bank-1", seat_granted=True) is False
    with pytest.raises(PaymentReferenceConflict) as refused:
        registration.record_payment(Money(1200, "USD"), "manual", "bank-1", seat_granted=True)
    assert (refused.value.code, refused.value.status) == ("payment_reference_conflict", 409)
    assert registration.has_payment("manual", "bank-1") and not registration.has_payment("stripe", "bank-1")
    assert (registration.version, registration.paid_minor) == (version, 4900)


def test_the_same_refund_reference_and_amount_is_a_repeat_another_amount_a_conflict() -> None:
    registration = _paid()
    assert registration.record_refund(Money(1000, "USD"), "re-1")
    version = registration.version
    assert registration.record_refund(Money(1000, "USD"), "re-1") is False
    with pytest.raises(RefundReferenceConflict) as refused:
        registration.record_refund(Money(2000, "USD"), "re-1")
    assert (refused.value.code, refused.value.status) == ("refund_reference_conflict", 409)
    assert (registration.version, registration.refunded_minor) == (version, 1000)
