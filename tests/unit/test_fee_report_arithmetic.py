"""R16-R18 report arithmetic, without I/O: half-up fees on ticket money,
proportional reversals, ticket counting, money owed back, totals as exact sums
of rows, CSV that parses back."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import CurrencyNotSupported, ValidationFailed
from ledger.fee_policy import DEFAULT_FEE_POLICY
from ledger.money import MINOR_UNIT_DIGITS, Money
from projections import fee_report
from projections.fee_report import FeeDays, FeeFigures, FeeReport, totals
from projections.paging import InvalidDateRange

WHEN = datetime(2026, 5, 31, 23, 59, 59, tzinfo=UTC)
CURRENCIES = sorted(MINOR_UNIT_DIGITS)


def row(paid: int = 0, price: int = 1000, currency: str = "USD", closed: str | None = None) -> Any:
    return SimpleNamespace(organizer_id="org", currency=currency, paid_minor=paid, price_minor=price,
                           closed_reason=closed)


def payment(amount: int, *, seat: bool = True, when: datetime = WHEN) -> Any:
    return SimpleNamespace(amount_minor=amount, fee_minor=DEFAULT_FEE_POLICY.fee_on(amount),
                           seat_granted=seat, timestamp=when, fee_policy="fee-v2")


def pay(days: FeeDays, before: Any, event: Any, *, owed: int = 0) -> None:
    """As projections.batch does it: the row after the payment, and whether it held a ticket before."""
    held = before.closed_reason is None and before.paid_minor >= before.price_minor
    after = row(before.paid_minor + event.amount_minor, before.price_minor, before.currency,
                before.closed_reason or (None if event.seat_granted else "capacity_exhausted"))
    days.payment(after, event, held_before=held, owed_delta=owed)


@pytest.mark.parametrize(("paid", "fee"), [
    (10, 1),      # 0.5 minor units → 1 (half-up)
    (30, 2),      # 1.5 → 2
    (9, 0),       # 0.45 → 0
    (1010, 51),   # 50.5 → 51
    (1009, 50),   # 50.45 → 50
    (110, 6), (130, 7), (150, 8), (170, 9), (1990, 100),
])
def test_fee_is_five_percent_half_up_to_the_minor_unit(paid: int, fee: int) -> None:
    exact = (Decimal(paid) * Decimal("0.05")).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    assert DEFAULT_FEE_POLICY.fee_on(paid) == fee == int(exact)


def test_a_report_adds_rounded_fees_it_never_rounds_a_sum() -> None:
    days = FeeDays()
    for _ in range(3):
        pay(days, row(), payment(1010))
    (day,) = days.days.values()
    assert (day.gross_minor, day.fee_minor) == (3030, 153)  # 5% of 30.30 would round to 1.52
    assert day.tickets == 3


def test_tickets_count_the_payment_that_completes_the_price_with_a_seat() -> None:
    days = FeeDays()
    pay(days, row(paid=0, price=1000), payment(400))   # partial: no ticket yet
    pay(days, row(paid=400, price=1000), payment(600))  # completes it: one ticket
    pay(days, row(paid=1000, price=1000), payment(50), owed=50)  # already paid: none, owed back
    pay(days, row(paid=0, price=1000), payment(1000, seat=False), owed=1000)  # no seat (R9): owed back
    pay(days, row(paid=0, price=1000, closed="event_cancelled"), payment(1000), owed=1000)  # after the cancel
    (day,) = days.days.values()
    assert (day.tickets, day.payments, day.gross_minor, day.refund_due_minor) == (1, 5, 3050, 2050)


def test_money_is_dated_by_utc_day_and_keyed_by_organizer_and_currency() -> None:
    days = FeeDays()
    warsaw_evening = datetime.fromisoformat("2026-06-01T00:30:00+02:00")  # still May 31 in UTC
    pay(days, row(currency="PLN"), payment(1000, when=warsaw_evening))
    pay(days, row(currency="EUR"), payment(1000))
    days.refund(row(currency="PLN"), SimpleNamespace(amount_minor=300, fee_reversed_minor=15, timestamp=WHEN,
                                                     fee_policy="fee-v2"), owed_delta=0)
    assert sorted(days.days) == [("org", "EUR", WHEN.date(), "fee-v2"), ("org", "PLN", WHEN.date(), "fee-v2")]
    pln = days.days[("org", "PLN", WHEN.date(), "fee-v2")]
    assert (pln.gross_minor, pln.refunded_minor, pln.refund_count, pln.fee_minor, pln.fee_reversed_minor) == (
        1000, 300, 1, 50, 15)


def test_lines_are_kept_apart_by_fee_policy() -> None:
    """R18: a policy change never rewrites old lines; each line names its policy."""
    days = FeeDays()
    old = SimpleNamespace(amount_minor=1000, fee_minor=50, seat_granted=True, timestamp=WHEN, fee_policy="fee-v1")
    pay(days, row(), old)
    pay(days, row(), payment(1000))
    assert sorted(k[3] for k in days.days) == ["fee-v1", "fee-v2"]


@settings(max_examples=200, deadline=None)
@given(price=st.integers(1, 10**7), refunds=st.lists(st.integers(1, 10**6), max_size=6))
def test_goodwill_refunds_reverse_in_proportion_and_a_full_refund_reverses_exactly_the_fee(
    price: int, refunds: list[int]
) -> None:
    """fee-v2: what stays charged is always 5% half-up of the ticket money left."""
    policy = DEFAULT_FEE_POLICY
    fee = policy.charge(outstanding=0, ticket_after=price)
    ticket, reversed_fee = price, 0
    for wanted in [*refunds, price]:  # whatever happened before, the rest is refunded at the end
        amount = min(wanted, ticket)
        if amount <= 0:
            break
        ticket -= amount
        reversed_fee += policy.reversal(outstanding=fee - reversed_fee, ticket_after=ticket)
        assert 0 <= reversed_fee <= fee
        assert fee - reversed_fee == policy.fee_on(ticket)
        share = Decimal(fee) * (price - ticket) / price
        assert abs(reversed_fee - share) <= 1  # in proportion, to the minor unit
    assert (ticket, reversed_fee) == (0, fee)


def test_a_lost_ticket_reverses_every_fee_still_charged_even_a_fee_v1_one() -> None:
    policy = DEFAULT_FEE_POLICY
    assert policy.reversal(outstanding=245, ticket_after=0) == 245
    assert policy.reversal(outstanding=490, ticket_after=4900) == 245  # v1 charged a double payment too
    assert policy.charge(outstanding=490, ticket_after=4900) == 0  # payments never give fee back


FIGURES = st.builds(
    FeeFigures, currency=st.sampled_from(CURRENCIES), tickets=st.integers(0, 1000),
    payments=st.integers(0, 1000), gross_minor=st.integers(0, 10**9), refund_count=st.integers(0, 100),
    refunded_minor=st.integers(0, 10**9), fee_charged_minor=st.integers(0, 10**8),
    fee_reversed_minor=st.integers(0, 10**8), refund_due_minor=st.integers(-10**8, 10**8),
    organizer_id=st.sampled_from(["a", "b", "c"]), period=st.sampled_from(["2026-01", "2026-02"]),
    fee_policy=st.sampled_from(["fee-v1", "fee-v2"]),
)


@settings(max_examples=100, deadline=None)
@given(items=st.lists(FIGURES, max_size=40))
def test_totals_are_exact_sums_of_rows_in_every_currency(items: list[FeeFigures]) -> None:
    report = FeeReport(items=items, totals=totals(items))
    assert [t.currency for t in report.totals] == sorted({i.currency for i in items})
    for total in report.totals:
        mine = [i for i in items if i.currency == total.currency]
        for name in ("tickets", "payments", "gross_minor", "refund_count", "refunded_minor",
                     "fee_charged_minor", "fee_reversed_minor", "net_minor", "fee_minor", "refund_due_minor"):
            assert getattr(total, name) == sum(getattr(i, name) for i in mine)
    parsed = list(csv.DictReader(io.StringIO(fee_report.to_csv(report))))
    assert len(parsed) == len(items) + len(report.totals)
    for line, figures in zip(parsed, [*items, *report.totals], strict=True):
        assert Money.parse(line["net"], line["currency"]).minor == figures.net_minor
        assert Money.parse(line["fee"], line["currency"]).minor == figures.fee_minor
        assert Money.parse(line["refund_due"], line["currency"]).minor == figures.refund_due_minor
        assert line["fee_policy"] == (figures.fee_policy or "")
        assert int(line["tickets"]) == figures.tickets


def test_amounts_are_decimal_strings_with_every_minor_digit() -> None:
    figures = FeeFigures(currency="USD", tickets=1, payments=1, gross_minor=1000, refund_count=1,
                         refunded_minor=1505, fee_charged_minor=50, fee_reversed_minor=75, refund_due_minor=-505,
                         organizer_id="o", period="2026-01", fee_policy="fee-v2")
    shown = figures.as_dict()
    assert (shown["gross"], shown["refunds"], shown["net"], shown["fee"], shown["refund_due"]) == (
        "10.00", "15.05", "-5.05", "-0.25", "-5.05")
    assert shown["fee_policy"] == "fee-v2"
    assert shown["organizer_id"] == "o" and shown["period"] == "2026-01"
    assert "organizer_id" not in totals([figures])[0].as_dict()


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"date_from": "2026-1-01"}, ValidationFailed), ({"date_to": "2026-04-31"}, ValidationFailed),
    ({"date_from": "2026-05-02", "date_to": "2026-05-01"}, InvalidDateRange),
    ({"currency": "BTC"}, CurrencyNotSupported), ({"period": "quarter"}, ValidationFailed),
])
def test_bad_input_is_refused_before_any_query(kwargs: dict[str, str], error: type[Exception]) -> None:
    with pytest.raises(error):
        fee_report.query(None, **kwargs)  # type: ignore[arg-type]  # never reaches the database
