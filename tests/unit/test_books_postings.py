"""The posting rules (R22) on the worked examples of docs/books.md: each money
fact of a registration, applied in memory the way the projection applies it
(the who-paid row before and after, ``projections.books.post``), gives exactly
the documented lines, and every entry balances."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from ledger.domain.registration import Registration
from ledger.money import Money
from projections import books, books_query, who_paid

USD = "USD"
Lines = set[tuple[str, str, int]]  # (account, "Dr"/"Cr", minor)


class Story:
    """A registration whose facts are posted one by one."""

    def __init__(self, price: int = 4900) -> None:
        self.reg = Registration.register(
            id=uuid.uuid4(), event_id=str(uuid.uuid4()), organizer_id=str(uuid.uuid4()), name="N",
            email="n@example.com", fields={}, language=None, price_minor=price, currency=USD, provider="stripe",
        )
        self.position = 0
        self.row: Any = None
        self.entries: list[books.Entry] = []
        self.post_pending()

    def post_pending(self) -> list[Lines]:
        found = []
        for event in self.reg.collect_events():
            self.position += 1
            before = books.Split.of(self.row) if self.row is not None else None
            self.row = who_paid.apply(self.row, event, self.position)
            if before is None:
                continue
            entry = books.post(books.Fact(self.position, event, self.row, before, books.Split.of(self.row)))
            if entry is not None:
                assert sum(x.debit for x in entry.lines) == sum(x.credit for x in entry.lines)
                self.entries.append(entry)
                found.append({(x.account, "Dr" if x.debit else "Cr", x.debit or x.credit) for x in entry.lines})
        return found

    def do(self, command: Callable[[Registration], Any]) -> Lines:
        command(self.reg)
        (lines,) = self.post_pending()
        return lines

    def pay(self, minor: int, provider: str = "stripe", ref: str = "p", seat: bool = True) -> Lines:
        return self.do(lambda r: r.record_payment(Money(minor, USD), provider, ref, seat_granted=seat))

    def refund(self, minor: int, ends_access: bool | None = None, ref: str = "r") -> Lines:
        return self.do(lambda r: r.record_refund(Money(minor, USD), ref, ends_access=ends_access))


def test_a_payment_holds_the_money_earns_the_ticket_and_charges_the_fee() -> None:
    assert Story().pay(4900) == {("held:stripe", "Dr", 4900), ("ticket_revenue", "Cr", 4900),
                                 ("fee_expense", "Dr", 245), ("fee_payable", "Cr", 245)}


def test_a_second_payment_is_owed_back_without_fee_and_its_refund_pays_it_back() -> None:
    story = Story()
    story.pay(4900, ref="bank-1")
    assert story.pay(4900, provider="manual", ref="bank-2") == {("held:manual", "Dr", 4900), ("owed_back", "Cr", 4900)}
    assert story.refund(4900) == {("owed_back", "Dr", 4900), ("refunds_paid", "Cr", 4900)}


def test_part_payments_wait_as_owed_back_then_become_ticket_money() -> None:
    story = Story()
    assert story.pay(2000, provider="manual", ref="a") == {("held:manual", "Dr", 2000), ("owed_back", "Cr", 2000)}
    assert story.pay(4000, provider="manual", ref="b") == {
        ("held:manual", "Dr", 4000), ("owed_back", "Dr", 900), ("ticket_revenue", "Cr", 4900),
        ("fee_expense", "Dr", 245), ("fee_payable", "Cr", 245)}


def test_a_goodwill_refund_keeps_the_ticket_and_gives_back_its_share_of_the_fee() -> None:
    story = Story()
    story.pay(4900)
    assert story.refund(1000, ends_access=False) == {
        ("ticket_revenue", "Dr", 1000), ("refunds_paid", "Cr", 1000), ("fee_payable", "Dr", 50),
        ("fee_expense", "Cr", 50)}


def test_a_refund_that_ends_access_moves_the_rest_to_owed_back() -> None:
    story = Story()
    story.pay(4900)
    assert story.refund(1000, ends_access=True) == {
        ("ticket_revenue", "Dr", 4900), ("owed_back", "Cr", 3900), ("refunds_paid", "Cr", 1000),
        ("fee_payable", "Dr", 245), ("fee_expense", "Cr", 245)}


@pytest.mark.parametrize("close", [lambda r: r.reject("no"), lambda r: r.cancel("called off")])
def test_cancel_and_reject_make_the_ticket_money_owed_back_and_reverse_the_fee(close: Any) -> None:
    story = Story()
    story.pay(4900)
    assert story.do(close) == {("ticket_revenue", "Dr", 4900), ("owed_back", "Cr", 4900),
                               ("fee_payable", "Dr", 245), ("fee_expense", "Cr", 245)}
    assert story.pay(4900, ref="late") == {("held:stripe", "Dr", 4900), ("owed_back", "Cr", 4900)}


def test_closing_a_registration_that_paid_nothing_posts_nothing() -> None:
    story = Story()
    story.reg.reject("no")
    assert story.post_pending() == []


def test_a_payment_that_found_no_seat_is_owed_back() -> None:
    assert Story().pay(4900, seat=False) == {("held:stripe", "Dr", 4900), ("owed_back", "Cr", 4900)}


# --- provider corrections (issue 18): the `withdrawn` account ---------------------------


def _disputed(story: Story, minor: int = 4900) -> None:
    """A dispute opened on the payment: a marker, no entry."""
    story.reg.record_dispute("dp_1", "stripe", "p", Money(minor, USD), "fraudulent")
    assert story.post_pending() == []


def test_funds_withdrawn_leave_the_ticket_and_give_its_fee_back() -> None:
    story = Story()
    story.pay(4900)
    _disputed(story)
    assert story.do(lambda r: r.record_funds_withdrawn("dp_1", Money(4900, USD))) == {
        ("ticket_revenue", "Dr", 4900), ("withdrawn", "Cr", 4900), ("fee_payable", "Dr", 245),
        ("fee_expense", "Cr", 245)}


def test_funds_withdrawn_are_taken_from_money_owed_back_first() -> None:
    story = Story()
    story.pay(4900)
    story.pay(4900, provider="manual", ref="bank-2")
    _disputed(story)
    assert story.do(lambda r: r.record_funds_withdrawn("dp_1", Money(4900, USD))) == {
        ("owed_back", "Dr", 4900), ("withdrawn", "Cr", 4900)}


def test_funds_reinstated_pay_for_the_ticket_again_and_charge_its_fee_again() -> None:
    story = Story()
    story.pay(4900)
    _disputed(story)
    story.do(lambda r: r.record_funds_withdrawn("dp_1", Money(4900, USD)))
    assert story.do(lambda r: r.record_funds_reinstated("dp_1", Money(4900, USD))) == {
        ("withdrawn", "Dr", 4900), ("ticket_revenue", "Cr", 4900), ("fee_expense", "Dr", 245),
        ("fee_payable", "Cr", 245)}


def test_a_dispute_won_posts_no_entry() -> None:
    story = Story()
    story.pay(4900)
    _disputed(story)
    story.reg.resolve_dispute("dp_1", "won")
    assert story.post_pending() == []


def test_a_dispute_lost_after_part_was_withdrawn_makes_the_rest_owed_back() -> None:
    story = Story()
    story.pay(4900)
    _disputed(story, 3000)
    assert story.do(lambda r: r.record_funds_withdrawn("dp_1", Money(3000, USD))) == {
        ("ticket_revenue", "Dr", 3000), ("withdrawn", "Cr", 3000), ("fee_payable", "Dr", 150),
        ("fee_expense", "Cr", 150)}
    assert story.do(lambda r: r.resolve_dispute("dp_1", "lost")) == {
        ("ticket_revenue", "Dr", 1900), ("owed_back", "Cr", 1900), ("fee_payable", "Dr", 95),
        ("fee_expense", "Cr", 95)}


def test_a_dispute_lost_after_everything_was_withdrawn_posts_no_entry() -> None:
    story = Story()
    story.pay(4900)
    _disputed(story)
    story.do(lambda r: r.record_funds_withdrawn("dp_1", Money(4900, USD)))
    story.reg.resolve_dispute("dp_1", "lost")
    assert story.post_pending() == []
    assert story.reg.status == "dispute_lost"


def test_a_payment_reversed_takes_the_money_the_ticket_and_the_fee() -> None:
    story = Story()
    story.pay(4900, provider="paypal", ref="cap_1")
    assert story.do(lambda r: r.record_reversal("rev_1", "cap_1", Money(4900, USD))) == {
        ("ticket_revenue", "Dr", 4900), ("withdrawn", "Cr", 4900), ("fee_payable", "Dr", 245),
        ("fee_expense", "Cr", 245)}
    assert story.reg.status == "dispute_lost"


def test_a_payment_reversed_beyond_the_ticket_money_takes_the_rest_from_owed_back() -> None:
    story = Story()
    story.pay(4900, provider="paypal", ref="cap_1")
    story.pay(4900, provider="manual", ref="bank-2")
    assert story.do(lambda r: r.record_reversal("rev_1", "cap_1", Money(9800, USD))) == {
        ("ticket_revenue", "Dr", 4900), ("owed_back", "Dr", 4900), ("withdrawn", "Cr", 9800),
        ("fee_payable", "Dr", 245), ("fee_expense", "Cr", 245)}


def test_a_refund_failed_is_held_again_and_owed_back() -> None:
    story = Story()
    story.pay(4900)
    story.refund(4900, ref="re_1")  # ends access (nothing paid left)
    assert story.do(lambda r: r.record_refund_failure("re_1")) == {
        ("refunds_paid", "Dr", 4900), ("owed_back", "Cr", 4900)}
    assert story.reg.status == "refund_due"


def test_the_trial_balance_and_statement_after_a_lost_dispute() -> None:
    """docs/books.md: 49.00 paid by Stripe, 30.00 withdrawn, the dispute lost."""
    story = Story()
    story.pay(4900)
    _disputed(story, 3000)
    story.do(lambda r: r.record_funds_withdrawn("dp_1", Money(3000, USD)))
    story.do(lambda r: r.resolve_dispute("dp_1", "lost"))
    totals: dict[str, tuple[int, int]] = {}
    for entry in story.entries:
        for x in entry.lines:
            d, c = totals.get(x.account, (0, 0))
            totals[x.account] = (d + x.debit, c + x.credit)
    assert totals == {"held:stripe": (4900, 0), "withdrawn": (0, 3000), "ticket_revenue": (4900, 4900),
                      "owed_back": (0, 1900), "fee_expense": (245, 245), "fee_payable": (245, 245)}
    assert sum(d for d, _ in totals.values()) == sum(c for _, c in totals.values()) == 10290

    def balance(account: str) -> int:
        return totals[account][0] - totals[account][1]
    # held − refunds_paid − withdrawn = ticket_revenue + owed_back (credit balances as positive)
    assert balance("held:stripe") - 0 + balance("withdrawn") == -balance("ticket_revenue") - balance("owed_back")
    figures = books_query.StatementFigures(USD)
    for account, (d, c) in totals.items():
        effect = books_query._effect(account, d, c)
        figures.received_minor += effect.get("received", 0)
        figures.refunds_minor += effect.get("refunds", 0)
        figures.withdrawn_minor += effect.get("withdrawn", 0)
        figures.owed_back_minor += effect.get("owed", 0)
        figures.fee_minor += effect.get("fee", 0)
    assert (figures.received_minor, figures.refunds_minor, figures.withdrawn_minor, figures.owed_back_minor,
            figures.sales_minor, figures.fee_minor, figures.closing_minor) == (4900, 0, 3000, 1900, 0, 0, 0)


def test_an_unbalanced_rule_is_refused() -> None:
    with pytest.raises(books.Unbalanced):
        books.check_balanced([books.Line("held:stripe", debit=100), books.Line("owed_back", credit=99)], "x")


def test_account_names_for_filters() -> None:
    assert all(books.is_account_name(a) for a in (*books.FIXED_ACCOUNTS, "held:stripe", "held:manual"))
    assert not any(books.is_account_name(a) for a in ("cash", "held:", "held:a b", "held:é", "owed"))
