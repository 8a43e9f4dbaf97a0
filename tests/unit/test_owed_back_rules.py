"""R17 owed back, R18 fee base, R19 partial refunds -- on the Registration
aggregate alone (no database), and the upcasters that keep old events' meaning."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import owed_back
from ledger.domain.registration import Registration
from ledger.errors import LedgerError
from ledger.fee_policy import DEFAULT_FEE_POLICY, FEE_V1, FEE_V2
from ledger.money import Money

USD = "USD"


def reg(price: int = 4900) -> Registration:
    return Registration.register(
        id=uuid.uuid4(), event_id="e", organizer_id="org", name="N", email="n@example.com", fields={},
        language=None, price_minor=price, currency=USD, provider="manual",
    )


def pay(r: Registration, minor: int, ref: str, *, seat: bool = True) -> None:
    assert r.record_payment(Money(minor, USD), "manual", ref, seat_granted=seat)


def figures(r: Registration) -> tuple[str, int, int, int, int]:
    """(status, paid, refund_due, ticket money, fee still charged)."""
    return r.status, r.paid_minor, r.refund_due_minor, r.ticket_minor, r.fee_outstanding_minor


def last_event(r: Registration) -> Any:
    return r.pending_events[-1]


# --- R17: any real payment is recorded; what buys no ticket is owed back -----------------


def test_r17_a_second_payment_is_recorded_owed_back_and_the_ticket_stays() -> None:
    r = reg()
    pay(r, 4900, "bank-1")
    pay(r, 4900, "bank-2")  # the first release refused this: "0.00 USD is due"
    assert figures(r) == ("paid", 9800, 4900, 4900, 245)
    assert last_event(r).fee_minor == 0 and last_event(r).fee_policy == FEE_V2  # no fee on money owed back


def test_r17_a_part_payment_is_owed_back_until_the_rest_arrives_then_pays_for_the_ticket() -> None:
    r = reg()
    pay(r, 2000, "part-1")
    assert figures(r) == ("awaiting_payment", 2000, 2000, 0, 0)
    pay(r, 2900, "part-2")
    assert figures(r) == ("paid", 4900, 0, 4900, 245)  # the completing payment charges the ticket's fee


def test_r17_more_than_the_price_in_one_payment_owes_the_excess() -> None:
    r = reg()
    pay(r, 6000, "big")
    assert figures(r) == ("paid", 6000, 1100, 4900, 245)


def test_r17_r18_money_that_found_no_seat_is_owed_back_and_carries_no_fee() -> None:
    r = reg()
    pay(r, 4900, "late", seat=False)
    assert figures(r) == ("refund_due", 4900, 4900, 0, 0)
    assert r.fee_minor == 0  # fee-v1 charged 2.45 here


@pytest.mark.parametrize("close", ["cancel", "reject"])
def test_r17_r18_a_payment_after_the_cancel_or_rejection_is_owed_back_with_no_fee(close: str) -> None:
    r = reg()
    r.cancel("called off") if close == "cancel" else r.reject("spam")
    pay(r, 4900, "after")
    assert figures(r) == ("refund_due", 4900, 4900, 0, 0)
    assert r.fee_minor == 0


@pytest.mark.parametrize("close", ["cancel", "reject"])
def test_r18_a_ticket_lost_after_payment_gives_its_whole_fee_back_with_the_closing_fact(close: str) -> None:
    r = reg()
    pay(r, 4900, "paid")
    r.collect_events()
    r.cancel("called off") if close == "cancel" else r.reject("spam")
    (closing,) = r.collect_events()
    assert isinstance(closing, Registration.Cancelled | Registration.Rejected)
    assert (closing.fee_reversed_minor, closing.fee_policy) == (245, FEE_V2)
    assert figures(r) == ("refund_due", 4900, 4900, 0, 0)


def test_r17_a_cancelled_registration_paid_twice_owes_both() -> None:
    r = reg()
    pay(r, 4900, "one")
    r.cancel("called off")
    pay(r, 4900, "two")
    assert figures(r) == ("refund_due", 9800, 9800, 0, 0)
    assert r.fee_minor == r.fee_reversed_minor == 245


# --- refunds: owed back first, then the ticket (R17); partial refunds keep access (R19) ------


def test_r19_a_goodwill_refund_keeps_the_ticket_status_and_access() -> None:
    r = reg()
    pay(r, 4900, "paid")
    r.confirm()
    r.record_refund(Money(1000, USD), "goodwill")
    assert figures(r) == ("confirmed", 4900, 0, 3900, 195)  # the first release: refund_due 39.00, closed
    assert r.is_open and r.keeps_ticket
    assert last_event(r).ends_access is False and last_event(r).fee_reversed_minor == 50  # in proportion


def test_r19_refunding_everything_ends_access_by_default() -> None:
    r = reg()
    pay(r, 4900, "paid")
    r.record_refund(Money(4900, USD), "all")
    assert figures(r) == ("refunded", 4900, 0, 0, 0)
    assert last_event(r).ends_access is True and not r.keeps_ticket


def test_r19_the_organizer_decides_a_full_refund_keeps_access_or_a_partial_one_ends_it() -> None:
    free = reg()
    pay(free, 4900, "paid")
    free.record_refund(Money(4900, USD), "all", ends_access=False)
    assert figures(free) == ("paid", 4900, 0, 0, 0) and free.keeps_ticket  # a free ticket after all

    out = reg()
    pay(out, 4900, "paid")
    out.record_refund(Money(1000, USD), "part", ends_access=True)
    assert figures(out) == ("refund_due", 4900, 3900, 0, 0)  # the ticket is given back, the rest is owed


def test_r17_a_refund_is_taken_from_the_money_owed_back_before_the_ticket() -> None:
    r = reg()
    pay(r, 4900, "one")
    pay(r, 4900, "two")
    r.record_refund(Money(4900, USD), "double")  # half of what was paid: access stays
    assert figures(r) == ("paid", 9800, 0, 4900, 245)
    assert last_event(r).fee_reversed_minor == 0
    r.record_refund(Money(900, USD), "goodwill")
    assert figures(r) == ("paid", 9800, 0, 4000, 200)


def test_r17_a_goodwill_refund_is_not_topped_up_by_a_later_payment() -> None:
    r = reg()
    pay(r, 4900, "paid")
    r.record_refund(Money(1000, USD), "goodwill")
    pay(r, 1000, "again")
    assert figures(r) == ("paid", 5900, 1000, 3900, 195)


# --- old events keep their meaning (upcasters) --------------------------------------------


def test_v1_events_upcast_to_the_meaning_they_had() -> None:
    payment: dict[str, Any] = {"amount_minor": 4900, "provider": "stripe"}
    Registration.PaymentRecorded.upcast_v1_v2(payment)
    assert (payment["provider"], payment["method"]) == ("stripe", None)
    wire: dict[str, Any] = {"amount_minor": 4900, "provider": "wire"}  # accepted by the first release
    Registration.PaymentRecorded.upcast_v1_v2(wire)
    assert (wire["provider"], wire["method"]) == ("manual", "wire")  # the event schema's enum holds
    refund: dict[str, Any] = {"amount_minor": 1000, "fee_reversed_minor": 50}
    Registration.RefundRecorded.upcast_v1_v2(refund)
    assert (refund["ends_access"], refund["fee_policy"], refund["fee_reversed_minor"]) == (True, FEE_V1, 50)
    for cls in (Registration.Rejected, Registration.Cancelled):
        closing: dict[str, Any] = {"reason": "x"}
        cls.upcast_v1_v2(closing)  # type: ignore[attr-defined]
        assert (closing["fee_reversed_minor"], closing["fee_policy"]) == (0, FEE_V1)
    for versioned in (Registration.PaymentRecorded, Registration.RefundRecorded, Registration.Rejected,
                      Registration.Cancelled):
        assert versioned.class_version == 2  # type: ignore[attr-defined]


# --- the money always adds up, whatever the history -----------------------------------------

STEP = st.tuples(st.sampled_from(["pay", "pay_no_seat", "confirm", "reject", "cancel", "refund"]),
                 st.integers(1, 12_000), st.sampled_from([None, True, False]))


@settings(max_examples=300, deadline=None)
@given(price=st.integers(100, 10_000), steps=st.lists(STEP, max_size=14))
def test_paid_is_always_refunded_plus_owed_back_plus_ticket_money_and_the_fee_sits_on_ticket_money(
    price: int, steps: list[tuple[str, int, bool | None]]
) -> None:
    r = reg(price)
    for n, (action, amount, ends_access) in enumerate(steps):
        try:
            if action.startswith("pay"):
                pay(r, amount, f"p{n}", seat=action == "pay")
            elif action == "confirm":
                r.confirm()
            elif action == "reject":
                r.reject("no")
            elif action == "cancel":
                r.cancel("off")
            else:
                r.record_refund(Money(min(amount, max(1, r.paid_minor - r.refunded_minor)), USD), f"r{n}",
                                ends_access=ends_access)
        except LedgerError:
            pass
        assert r.paid_minor == r.refunded_minor + r.refund_due_minor + r.ticket_minor
        assert 0 <= r.ticket_minor <= r.price_minor and r.refund_due_minor >= 0
        assert r.ticket_minor == 0 or owed_back.holds_paid_ticket(r)
        assert r.fee_outstanding_minor == DEFAULT_FEE_POLICY.fee_on(r.ticket_minor)  # R18
        if r.status == "refunded":
            assert r.refunded_minor == r.paid_minor > 0
