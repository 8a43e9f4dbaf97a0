"""Disputes, reversals and failed refunds on the Registration aggregate alone
(issue 18 item 2): the money split keeps ``paid = refunded + withdrawn +
refund_due + ticket money``, fees follow R18 like a refund, repeats record
nothing, a lost dispute or a reversal ends the ticket."""

from __future__ import annotations

import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.domain.registration import Registration
from ledger.money import Money

USD = "USD"


def reg(price: int = 4900) -> Registration:
    return Registration.register(
        id=uuid.uuid4(), event_id="e", organizer_id="org", name="N", email="n@example.com", fields={},
        language=None, price_minor=price, currency=USD, provider="stripe",
    )


def paid(price: int = 4900) -> Registration:
    r = reg(price)
    assert r.record_payment(Money(price, USD), "stripe", "cs_1", seat_granted=True)
    return r


def balanced(r: Registration) -> bool:
    return r.paid_minor == r.refunded_minor + r.withdrawn_minor + r.refund_due_minor + r.ticket_minor


def test_a_dispute_withdrawn_then_lost_ends_the_ticket_and_gives_the_fee_back() -> None:
    r = paid()
    assert r.record_dispute("dp_1", "stripe", "cs_1", Money(4900, USD), "fraudulent")
    assert not r.record_dispute("dp_1", "stripe", "cs_1", Money(4900, USD), "fraudulent")  # a repeat
    assert (r.status, r.disputed, r.fee_outstanding_minor) == ("paid", True, 245)
    assert r.record_funds_withdrawn("dp_1", Money(4900, USD))
    assert not r.record_funds_withdrawn("dp_1", Money(4900, USD))
    assert (r.withdrawn_minor, r.ticket_minor, r.fee_outstanding_minor, r.is_open) == (4900, 0, 0, True)
    assert r.resolve_dispute("dp_1", "lost")
    assert not r.resolve_dispute("dp_1", "lost")
    assert (r.status, r.closed_reason, r.keeps_ticket, r.refund_due_minor) == ("dispute_lost", "dispute_lost", False, 0)
    assert balanced(r)


def test_a_dispute_won_after_reinstatement_restores_ticket_and_fee() -> None:
    r = paid()
    r.record_dispute("dp_1", "stripe", "cs_1", Money(4900, USD), None)
    r.record_funds_withdrawn("dp_1", Money(4900, USD))
    assert r.record_funds_reinstated("dp_1", Money(4900, USD))
    r.resolve_dispute("dp_1", "won")
    assert (r.status, r.disputed, r.withdrawn_minor, r.ticket_minor, r.fee_outstanding_minor) == (
        "paid", False, 0, 4900, 245)
    assert balanced(r)


def test_withdrawal_takes_money_owed_back_first() -> None:
    r = paid()
    r.record_payment(Money(4900, USD), "stripe", "cs_2", seat_granted=True)  # paid twice: 49.00 owed back
    r.record_dispute("dp_2", "stripe", "cs_2", Money(4900, USD), None)
    r.record_funds_withdrawn("dp_2", Money(4900, USD))
    assert (r.refund_due_minor, r.ticket_minor, r.fee_outstanding_minor, r.status) == (0, 4900, 245, "paid")
    assert balanced(r)


def test_a_lost_dispute_without_a_withdrawal_leaves_the_money_owed_back() -> None:
    r = paid()
    r.record_dispute("PP-D-1", "paypal", "O-1", Money(4900, USD), None)
    r.resolve_dispute("PP-D-1", "lost")
    assert (r.status, r.refund_due_minor, r.fee_outstanding_minor) == ("refund_due", 4900, 0)
    assert balanced(r)


def test_a_reversal_ends_the_ticket_once() -> None:
    r = paid()
    assert r.record_reversal("rv_1", "O-1", Money(4900, USD))
    assert not r.record_reversal("rv_1", "O-1", Money(4900, USD))
    assert (r.status, r.closed_reason, r.withdrawn_minor, r.fee_outstanding_minor) == (
        "dispute_lost", "reversed", 4900, 0)
    assert balanced(r)


def test_a_failed_refund_is_owed_back_again_and_only_once() -> None:
    r = paid()
    r.record_refund(Money(4900, USD), "re_1")
    assert (r.status, r.refunded_minor) == ("refunded", 4900)
    assert r.record_refund_failure("re_1")
    assert not r.record_refund_failure("re_1")
    assert not r.record_refund_failure("re_unknown")  # never recorded: nothing to undo
    assert (r.status, r.refunded_minor, r.refund_due_minor) == ("refund_due", 0, 4900)
    assert balanced(r)


@settings(max_examples=60, deadline=None)
@given(
    withdrawn=st.integers(min_value=1, max_value=9800),
    reinstate=st.booleans(),
    outcome=st.sampled_from(["won", "lost"]),
    refund=st.integers(min_value=0, max_value=4900),
)
def test_the_split_always_balances(withdrawn: int, reinstate: bool, outcome: str, refund: int) -> None:
    r = paid()
    r.record_payment(Money(4900, USD), "stripe", "cs_2", seat_granted=True)
    if refund:
        r.record_refund(Money(refund, USD), "re_1", ends_access=False)
    held = r.paid_minor - r.refunded_minor
    amount = min(withdrawn, held)
    r.record_dispute("dp", "stripe", "cs_1", Money(amount, USD), None)
    r.record_funds_withdrawn("dp", Money(amount, USD))
    assert balanced(r) and r.fee_outstanding_minor >= 0
    if reinstate:
        r.record_funds_reinstated("dp", Money(amount, USD))
        assert balanced(r)
    r.resolve_dispute("dp", outcome)
    assert balanced(r) and min(r.refund_due_minor, r.ticket_minor, r.fee_outstanding_minor) >= 0
    # R18: the fee still charged is 5% (half-up) of the ticket money held.
    assert r.fee_outstanding_minor == (2 * r.ticket_minor * 5 + 100) // 200


def test_the_disputed_marker_is_fixed_on_the_facts_for_who_paid() -> None:
    """Found by the books property test: a withdrawal that arrives before its
    dispute opens it, and one dispute won leaves another open: the facts carry
    the marker after them (``disputed``), so who paid shows what the aggregate says."""
    from projections import who_paid

    r = Registration.register(
        id=uuid.uuid4(), event_id=str(uuid.uuid4()), organizer_id="org", name="N", email="n@example.com",
        fields={}, language=None, price_minor=4900, currency=USD, provider="stripe")
    assert r.record_payment(Money(4900, USD), "stripe", "cs_1", seat_granted=True)
    assert r.record_funds_withdrawn("dp_1", Money(1000, USD))  # before charge.dispute.created
    assert r.disputed
    assert r.record_dispute("dp_2", "stripe", "cs_1", Money(1000, USD), None)
    assert r.resolve_dispute("dp_2", "won")
    assert r.disputed  # dp_1 is still open
    assert r.resolve_dispute("dp_1", "won")
    assert not r.disputed
    row = None
    events = list(r.collect_events())
    for n, e in enumerate(events, start=1):
        row = who_paid.apply(row, e, n)
    assert [e.disputed for e in events if hasattr(e, "disputed")] == [True, True, False]
    assert row is not None and not row.disputed


def test_version_1_dispute_facts_read_as_before() -> None:
    withdrawn: dict[str, object] = {"outcome": "lost"}
    Registration.DisputeFundsWithdrawn.upcast_v1_v2(withdrawn)
    resolved: dict[str, object] = {"outcome": "won"}
    Registration.DisputeResolved.upcast_v1_v2(resolved)
    assert (withdrawn["disputed"], resolved["disputed"]) == (True, False)


def test_reinstated_money_gives_the_ticket_back_what_was_taken_never_more() -> None:
    """A goodwill refund lowered the ticket, a second payment is owed back;
    a dispute takes the first payment (owed back first, then the ticket) and
    is won: the ticket is as it was (70.00, with its fee), the second payment
    owed back again -- not turned into ticket money."""
    r = paid(10000)
    assert r.record_refund(Money(3000, USD), "rf_1", ends_access=False)
    assert r.record_payment(Money(5000, USD), "stripe", "cs_2", seat_granted=True)
    assert (r.ticket_minor, r.refund_due_minor) == (7000, 5000)
    fee_before = r.fee_outstanding_minor
    r.record_dispute("dp_1", "stripe", "cs_1", Money(10000, USD), None)
    r.record_funds_withdrawn("dp_1", Money(10000, USD))
    assert (r.ticket_minor, r.refund_due_minor) == (2000, 0)
    assert r.record_funds_reinstated("dp_1", Money(10000, USD))
    r.resolve_dispute("dp_1", "won")
    assert (r.ticket_minor, r.refund_due_minor, r.fee_outstanding_minor) == (7000, 5000, fee_before)
    assert balanced(r)


def test_a_v1_reinstatement_replays_as_it_was_decided() -> None:
    """Stored v1 events (no ticket money on them) keep the figures the ledger
    recorded then."""
    from ledger import owed_back

    r = paid(10000)
    r.record_refund(Money(3000, USD), "rf_1", ends_access=False)
    r.record_payment(Money(5000, USD), "stripe", "cs_2", seat_granted=True)
    r.record_dispute("dp_1", "stripe", "cs_1", Money(10000, USD), None)
    r.record_funds_withdrawn("dp_1", Money(10000, USD))
    assert owed_back.reinstated_split(r, 10000, None).ticket_minor == 10000  # the v1 rule
    state = {"dispute_id": "dp_1", "amount_minor": 10000, "currency": USD, "fee_minor": 0, "fee_policy": "fee-v2"}
    Registration.DisputeFundsReinstated.upcast_v1_v2(state)
    assert state["ticket_minor"] is None


def test_a_refund_of_everything_still_held_after_a_withdrawal_ends_access_by_default() -> None:
    """R19: a refund of the whole amount ends access.  After a provider took
    40.00 back, the 60.00 still held is the whole amount: the payer has all of
    it back, so the ticket does not stay open with no money paying for it."""
    r = paid(10000)
    r.record_dispute("dp_1", "stripe", "cs_1", Money(4000, USD), None)
    r.record_funds_withdrawn("dp_1", Money(4000, USD))
    assert r.record_refund(Money(6000, USD), "rf_1")
    assert (r.closed_reason, r.keeps_ticket, r.ticket_minor, r.refund_due_minor) == ("refunded", False, 0, 0)
    assert balanced(r)
