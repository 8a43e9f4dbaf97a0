"""R9, R14, R15, R16 on the aggregates alone (no database)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from ledger.domain.paid_event import PaidEvent
from ledger.domain.registration import Registration
from ledger.errors import (
    AmountMismatch,
    CapacityExhausted,
    CurrencyMismatch,
    EventCancelled,
    InvalidState,
    RefundExceedsPaid,
    StartsAtInPast,
)
from ledger.fee_policy import DEFAULT_FEE_POLICY
from ledger.money import Money

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def make_event(**kw: object) -> PaidEvent:
    args = dict(
        organizer_id="org", title="T", description="", timezone="UTC", permanent=False,
        sessions=[{"id": "s1", "starts_at": "2037-12-01T10:00:00+00:00"}], price_minor=4900,
        currency="USD", provider="manual", connection_id="c",
    )
    args.update(kw)
    return PaidEvent.create(id=uuid.uuid4(), **args)


def make_registration(price_minor: int = 4900) -> Registration:
    return Registration.register(
        id=uuid.uuid4(), event_id="e", organizer_id="org", name="N", email="n@example.com", fields={},
        language=None, price_minor=price_minor, currency="USD", provider="manual",
    )


def test_r9_holds_count_against_capacity_until_they_expire() -> None:
    event = make_event()
    event.hold_seat("a", capacity=2, now=NOW, until=NOW + timedelta(minutes=30))
    event.hold_seat("b", capacity=2, now=NOW, until=NOW + timedelta(minutes=1))
    with pytest.raises(CapacityExhausted):
        event.hold_seat("c", capacity=2, now=NOW, until=NOW + timedelta(minutes=30))
    later = NOW + timedelta(minutes=2)
    event.hold_seat("c", capacity=2, now=later, until=later + timedelta(minutes=30))
    assert event.seats_taken(later) == 2


def test_r9_a_lapsed_hold_still_sells_if_a_seat_is_free_and_not_otherwise() -> None:
    event = make_event()
    event.hold_seat("a", capacity=1, now=NOW, until=NOW + timedelta(minutes=1))
    later = NOW + timedelta(minutes=5)
    event.hold_seat("b", capacity=1, now=later, until=later + timedelta(minutes=30))
    assert event.sell_seat("a", capacity=1, now=later) is False
    assert event.sell_seat("b", capacity=1, now=later) is True
    assert event.summary(1, later) == {"tickets_sold": 1, "tickets_held": 0, "tickets_left": 0, "capacity": 1}


def test_r9_plan_change_limits_future_sales_only() -> None:
    event = make_event()
    for rid in "abc":
        event.hold_seat(rid, capacity=3, now=NOW, until=NOW + timedelta(hours=1))
        event.sell_seat(rid, capacity=3, now=NOW)
    assert event.seats_left(2, NOW) == 0  # plan shrank to 2: nothing more is sold
    assert len(event.sold) == 3


def test_r7_the_event_has_no_way_to_change_its_price() -> None:
    event = make_event()
    event.edit("New title", None)
    assert event.price == Money(4900, "USD")
    assert not any("price" in name for name in dir(event) if name.startswith(("set", "change")))


def test_r15_cancelled_event_refuses_changes() -> None:
    event = make_event()
    event.cancel("venue burnt")
    with pytest.raises(EventCancelled):
        event.reschedule(NOW + timedelta(days=1), None, now=NOW)
    with pytest.raises(EventCancelled):
        event.hold_seat("x", capacity=5, now=NOW, until=NOW)


def test_r14_status_follows_payment_and_confirmation() -> None:
    reg = make_registration()
    assert reg.status == "awaiting_payment"
    reg.record_payment(Money(4900, "USD"), "manual", "r1", seat_granted=True)
    assert reg.status == "paid"
    reg.confirm()
    assert reg.status == "confirmed"


def test_a_payment_must_be_real_and_is_idempotent_per_reference() -> None:
    reg = make_registration()
    with pytest.raises(AmountMismatch):
        reg.record_payment(Money(0, "USD"), "manual", "r0", seat_granted=True)
    with pytest.raises(CurrencyMismatch):
        reg.record_payment(Money(4900, "EUR"), "manual", "r0", seat_granted=True)
    assert reg.record_payment(Money(4900, "USD"), "manual", "r1", seat_granted=True) is True
    assert reg.record_payment(Money(4900, "USD"), "manual", "r1", seat_granted=True) is False
    assert reg.paid_minor == 4900


def test_r9_money_without_a_seat_is_recorded_and_owed_back() -> None:
    reg = make_registration()
    reg.record_payment(Money(4900, "USD"), "stripe", "cs_1", seat_granted=False)
    assert reg.status == "refund_due" and reg.closed_reason == "capacity_exhausted"
    assert reg.refund_due_minor == 4900


def test_r15_reject_after_payment_owes_everything_back_then_refunds_close_it() -> None:
    reg = make_registration()
    reg.record_payment(Money(4900, "USD"), "manual", "r1", seat_granted=True)
    reg.reject("spam")
    assert (reg.status, reg.refund_due_minor) == ("refund_due", 4900)
    reg.record_refund(Money(900, "USD"), "re1")
    assert (reg.status, reg.refund_due_minor) == ("refund_due", 4000)
    with pytest.raises(RefundExceedsPaid):
        reg.record_refund(Money(4001, "USD"), "re2")
    reg.record_refund(Money(4000, "USD"), "re2")
    assert (reg.status, reg.refund_due_minor, reg.refunded_minor) == ("refunded", 0, 4900)


def test_r15_reject_unpaid_is_terminal() -> None:
    reg = make_registration()
    reg.reject("no show")
    assert reg.status == "rejected"
    with pytest.raises(InvalidState):
        reg.confirm()
    with pytest.raises(InvalidState):
        reg.reject("again")


def test_r15_event_cancellation_closes_unpaid_and_owes_paid() -> None:
    unpaid, paid = make_registration(), make_registration()
    paid.record_payment(Money(4900, "USD"), "manual", "r", seat_granted=True)
    unpaid.cancel("cancelled")
    paid.cancel("cancelled")
    assert unpaid.status == "cancelled"
    assert (paid.status, paid.refund_due_minor) == ("refund_due", 4900)


def test_r12_resend_only_for_a_participant_with_a_ticket() -> None:
    reg = make_registration()
    with pytest.raises(InvalidState):
        reg.request_resend()
    reg.record_payment(Money(4900, "USD"), "manual", "r", seat_granted=True)
    reg.request_resend()
    assert reg.resends == 1


def test_r16_fee_is_five_percent_half_up_per_payment_and_reverses_with_refunds() -> None:
    assert DEFAULT_FEE_POLICY.fee_on(1010) == 51  # 50.5 → 51
    assert DEFAULT_FEE_POLICY.fee_on(1009) == 50  # 50.45 → 50
    reg = make_registration(price_minor=1010)
    reg.record_payment(Money(1010, "USD"), "manual", "r", seat_granted=True)
    assert reg.fee_minor == 51
    reg.record_refund(Money(505, "USD"), "a")
    assert reg.fee_reversed_minor == 26  # 25.25 stays charged → 25
    reg.record_refund(Money(505, "USD"), "b")
    assert reg.fee_reversed_minor == 51  # a full refund reverses the whole fee


def test_event_schema_version_upcasts_v1_registrations() -> None:
    state = {"event_id": "e"}
    Registration.Registered.upcast_v1_v2(state)
    assert state["language"] is None
    assert Registration.Registered.class_version == 3  # v3: personal fields sealed (R24)


def test_a_session_cannot_be_moved_into_the_past() -> None:
    """Issue 13 item 11: the ledger's clock decides; the present moment is past too."""
    event = make_event()
    for when in (NOW - timedelta(days=400), NOW):
        with pytest.raises(StartsAtInPast) as refused:
            event.reschedule(when, None, now=NOW)
        assert refused.value.code == "starts_at_in_past"
    event.reschedule(NOW + timedelta(minutes=1), None, now=NOW)
    assert event.starts_at == (NOW + timedelta(minutes=1)).isoformat()


def test_a_plan_downgrade_limits_sales_of_seats_held_before_it() -> None:
    """Issue 13 item 9 (R9, R20): holds taken under a plan of 5 sell only 3 on a plan of 3."""
    event = make_event()
    until = NOW + timedelta(hours=1)
    for i in range(5):
        event.hold_seat(f"r{i}", capacity=5, now=NOW, until=until)
    sold = [event.sell_seat(f"r{i}", capacity=3, now=NOW) for i in range(5)]
    assert sold == [True, True, True, False, False]
    assert event.summary(3, NOW)["tickets_sold"] == 3
