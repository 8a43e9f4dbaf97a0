"""Fee reports (R16) from the projected view: per-payment half-up rounding,
many currencies, periods by payment (and refund) date, totals that are exact
sums of the rows and of the events, CSV that parses back to the same figures."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from datetime import UTC, datetime

import pytest

from ledger import event_log
from ledger.container import Ledger
from ledger.errors import CurrencyNotSupported, LedgerError, NotFound, ValidationFailed
from ledger.money import Money
from ledger.scope import ANYONE, Scope
from projections import fee_report
from projections.paging import InvalidDateRange
from tests.integration.projections.history import organizer_with_event, paid_registration, project


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    """Event timestamps come from here (``clock[0]``), so periods are testable."""
    now = [datetime(2026, 1, 15, 12, 0, tzinfo=UTC)]
    monkeypatch.setattr("eventsourcing.domain.datetime_now_with_tzinfo", lambda: now[0])
    return now


def test_each_payment_rounds_half_up_and_reports_only_add(fresh_ledger: Ledger, clock: list[datetime]) -> None:
    cases = {  # price → fee per payment: 5% rounded half-up to the minor unit
        Money(1010, "USD"): 51,  # 50.5 → 51
        Money(110, "EUR"): 6,    # 5.5 → 6
        Money(130, "GBP"): 7,    # 6.5 → 7
        Money(150, "CHF"): 8,    # 7.5 → 8
        Money(170, "SEK"): 9,    # 8.5 → 9
        Money(1990, "PLN"): 100,  # 99.5 → 100
        Money(1234, "CZK"): 62,  # 61.7 → 62
        Money(101, "NOK"): 5,    # 5.05 → 5
    }
    for price, fee in cases.items():
        _, event_id = organizer_with_event(fresh_ledger, price=price)
        for n in range(3):
            paid_registration(fresh_ledger, event_id, n)
        assert fresh_ledger.service.registration(paid_registration(fresh_ledger, event_id, 9)).fee_minor == fee
    project(fresh_ledger)
    report = fee_report.query(fresh_ledger.db)
    totals = {t.currency: t for t in report.totals}
    for price, fee in cases.items():
        total = totals[price.currency]
        assert (total.tickets, total.gross_minor, total.fee_minor) == (4, 4 * price.minor, 4 * fee)
    # The per-payment rule, not 5% of the sum: 4 x 10.10 USD → 2.04, not round(2.02) = 2.02.
    assert totals["USD"].as_dict()["fee"] == "2.04"
    assert totals["EUR"].as_dict() == {
        "currency": "EUR", "tickets": 4, "payments": 4, "gross": "4.40", "refunds": "0.00", "refund_count": 0,
        "refund_due": "0.00", "withdrawn": "0.00", "net": "4.40", "fee_charged": "0.24", "fee_reversed": "0.00",
        "fee": "0.24",
    }


def test_periods_by_payment_and_refund_date_with_inclusive_filters(
    fresh_ledger: Ledger, clock: list[datetime]
) -> None:
    org_id, event_id = organizer_with_event(fresh_ledger, price=Money(1010, "PLN"), country="PL")
    first = paid_registration(fresh_ledger, event_id, 1)
    paid_registration(fresh_ledger, event_id, 2)
    clock[0] = datetime(2026, 2, 3, 23, 59, tzinfo=UTC)
    paid_registration(fresh_ledger, event_id, 3)
    fresh_ledger.service.record_refund(first, amount=Money(505, "PLN"), reference="half")  # fee 25.5 → 26 back
    clock[0] = datetime(2027, 3, 1, 0, 0, tzinfo=UTC)
    fresh_ledger.service.record_refund(first, amount=Money(505, "PLN"), reference="rest")  # the other 25
    project(fresh_ledger)

    months = fee_report.query(fresh_ledger.db, organizer=org_id)
    assert [(i.period, i.tickets, i.gross_minor, i.refunded_minor, i.fee_minor) for i in months.items] == [
        ("2026-01", 2, 2020, 0, 102), ("2026-02", 1, 1010, 505, 51 - 26), ("2027-03", 0, 0, 505, -25),
    ]
    assert months.items[2].as_dict()["net"] == "-5.05"
    (total,) = months.totals
    assert (total.tickets, total.net_minor, total.fee_minor) == (3, 3030 - 1010, 3 * 51 - 51)
    years = fee_report.query(fresh_ledger.db, organizer=org_id, period="year")
    assert [i.period for i in years.items] == ["2026", "2027"]
    days = fee_report.query(fresh_ledger.db, organizer=org_id, period="day", date_from="2026-02-03",
                            date_to="2026-02-03")
    assert [(i.period, i.gross_minor) for i in days.items] == [("2026-02-03", 1010)]
    assert fee_report.query(fresh_ledger.db, date_from="2026-01-16", date_to="2026-02-02").items == []
    assert fee_report.query(fresh_ledger.db, currency="eur").items == []


def test_totals_equal_rows_and_the_events_to_the_cent(fresh_ledger: Ledger, clock: list[datetime]) -> None:
    service = fresh_ledger.service
    for day, (price, refund) in enumerate([(Money(4999, "EUR"), 1), (Money(1010, "USD"), 333),
                                           (Money(12345, "PLN"), 6172), (Money(101, "GBP"), 50)]):
        clock[0] = datetime(2026, 3, 1 + day, tzinfo=UTC)
        _, event_id = organizer_with_event(fresh_ledger, price=price)
        for n in range(5):
            rid = paid_registration(fresh_ledger, event_id, n)
            if n % 2:
                service.record_refund(rid, amount=Money(refund + n, price.currency), reference=f"r{n}")
    project(fresh_ledger)
    report = fee_report.query(fresh_ledger.db, period="day")
    expected: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for item in event_log.read(fresh_ledger.store, after=0, limit=10_000):
        data = item.data
        if item.type == "PaymentRecorded":
            expected[data["currency"]][0] += data["amount_minor"]
            expected[data["currency"]][2] += data["fee_minor"]
        elif item.type == "RefundRecorded":
            expected[data["currency"]][1] += data["amount_minor"]
            expected[data["currency"]][3] += data["fee_reversed_minor"]
    for total in report.totals:
        rows = [i for i in report.items if i.currency == total.currency]
        for name in ("tickets", "payments", "gross_minor", "refunded_minor", "fee_charged_minor",
                     "fee_reversed_minor", "net_minor", "fee_minor"):
            assert getattr(total, name) == sum(getattr(i, name) for i in rows), name
        assert [total.gross_minor, total.refunded_minor, total.fee_charged_minor,
                total.fee_reversed_minor] == expected[total.currency]

    parsed = list(csv.DictReader(io.StringIO(fee_report.to_csv(report))))
    assert [r["kind"] for r in parsed].count("total") == len(report.totals) == 4
    for line in (r for r in parsed if r["kind"] == "total"):
        lines = [r for r in parsed if r["kind"] == "item" and r["currency"] == line["currency"]]
        for column in ("gross", "refunds", "net", "fee", "fee_charged", "fee_reversed"):
            cents = sum(Money.parse(r[column], r["currency"]).minor for r in lines)
            assert Money(cents, line["currency"]).amount == line[column], column
        assert sum(int(r["tickets"]) for r in lines) == int(line["tickets"])


def test_organizers_see_their_own_figures_only(fresh_ledger: Ledger, clock: list[datetime]) -> None:
    mine, my_event = organizer_with_event(fresh_ledger)
    theirs, their_event = organizer_with_event(fresh_ledger)
    paid_registration(fresh_ledger, my_event, 1)
    paid_registration(fresh_ledger, their_event, 2)
    project(fresh_ledger)
    me = Scope(mine)
    assert {i.organizer_id for i in fee_report.query(fresh_ledger.db, scope=me).items} == {mine}
    assert {i.organizer_id for i in fee_report.query(fresh_ledger.db, scope=me, organizer=mine).items} == {mine}
    with pytest.raises(NotFound):
        fee_report.query(fresh_ledger.db, scope=me, organizer=theirs)
    with pytest.raises(NotFound):
        fee_report.query(fresh_ledger.db, scope=me, organizer="not-an-id")
    assert {i.organizer_id for i in fee_report.query(fresh_ledger.db, scope=ANYONE).items} == {mine, theirs}
    finance_one = fee_report.query(fresh_ledger.db, scope=ANYONE, organizer=theirs)
    assert {i.organizer_id for i in finance_one.items} == {theirs}


@pytest.mark.parametrize(("kwargs", "error", "field"), [
    ({"date_from": "2026-13-01"}, ValidationFailed, "from"),
    ({"date_to": "2026-02-30"}, ValidationFailed, "to"),
    ({"date_from": "yesterday"}, ValidationFailed, "from"),
    ({"date_from": "20260101"}, ValidationFailed, "from"),
    ({"date_from": "2026-03-02", "date_to": "2026-03-01"}, InvalidDateRange, "from"),
    ({"currency": "XYZ"}, CurrencyNotSupported, "currency"),
    ({"currency": "US"}, CurrencyNotSupported, "currency"),
    ({"period": "week"}, ValidationFailed, "period"),
    ({"organizer": "nope"}, ValidationFailed, "organizer"),
])
def test_bad_report_input_is_a_precise_refusal(
    shared_ledger: Ledger, kwargs: dict[str, str], error: type[LedgerError], field: str
) -> None:
    with pytest.raises(error) as refused:
        fee_report.query(shared_ledger.db, **kwargs)  # type: ignore[arg-type]
    assert 400 <= refused.value.status < 500
    assert field in (refused.value.errors() or {})
