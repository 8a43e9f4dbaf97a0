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
from projections import books, who_paid

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


def test_an_unbalanced_rule_is_refused() -> None:
    with pytest.raises(books.Unbalanced):
        books.check_balanced([books.Line("held:stripe", debit=100), books.Line("owed_back", credit=99)], "x")


def test_account_names_for_filters() -> None:
    assert all(books.is_account_name(a) for a in (*books.FIXED_ACCOUNTS, "held:stripe", "held:manual"))
    assert not any(books.is_account_name(a) for a in ("cash", "held:", "held:a b", "held:é", "owed"))
