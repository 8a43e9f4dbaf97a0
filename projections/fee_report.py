"""Fee reports (R16): per organizer, currency and period, the tickets sold, gross
sales, refunds, net and the platform's service fee.

Why the report only *adds*: the fee of every payment was fixed when it was
recorded (``PaymentRecorded.fee_minor``, policy ``fee-v1``: 5% rounded half-up
to the minor unit) and a refund carries the fee it gives back
(``RefundRecorded.fee_reversed_minor``, proportional).  The view keeps integer
sums of those per organizer, currency and UTC day; a report sums days into
periods and rows into per-currency totals.  No rounding happens after payment
time, so every total equals the sum of its rows and of the underlying payments,
to the cent, whatever the grouping.

Dating: a payment counts in the period of its payment date, a refund in the
period of its refund date (periods are never rewritten after the fact).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date
from typing import TYPE_CHECKING, Any
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from ledger.errors import NotFound, ValidationFailed
from ledger.money import Money, minor_digits
from ledger.scope import ANYONE, Scope
from projections.paging import InvalidDateRange

if TYPE_CHECKING:
    from ledger.database import Database
    from projections.who_paid import WhoPaidRow

PERIODS = ("day", "month", "year")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

# --- the write side: sums per (organizer, currency, day) ---------------------------


@dataclass(slots=True)
class FeeDay:
    tickets: int = 0
    payments: int = 0
    gross_minor: int = 0
    refund_count: int = 0
    refunded_minor: int = 0
    fee_minor: int = 0
    fee_reversed_minor: int = 0


class FeeDays:
    """A batch's contribution to ``fee_daily``, summed in memory and added to the
    stored sums in one upsert (the batch's transaction makes it exactly-once)."""

    def __init__(self) -> None:
        self.days: dict[tuple[str, str, date], FeeDay] = {}

    def _day(self, row: WhoPaidRow, when: Any) -> FeeDay:
        key = (row.organizer_id, row.currency, when.astimezone(UTC).date())
        found = self.days.get(key)
        if found is None:
            found = self.days[key] = FeeDay()
        return found

    def payment(self, row: WhoPaidRow, event: Any) -> None:
        """Called with the row *before* the payment is applied to it.  A ticket is
        the payment that completes the price with a seat granted (R9): a payment
        that found no seat is money owed back, not a ticket sold."""
        day = self._day(row, event.timestamp)
        day.payments += 1
        day.gross_minor += event.amount_minor
        day.fee_minor += event.fee_minor
        if event.seat_granted and row.paid_minor < row.price_minor <= row.paid_minor + event.amount_minor:
            day.tickets += 1

    def refund(self, row: WhoPaidRow, event: Any) -> None:
        day = self._day(row, event.timestamp)
        day.refund_count += 1
        day.refunded_minor += event.amount_minor
        day.fee_reversed_minor += event.fee_reversed_minor

    def save(self, conn: psycopg.Connection[Any], table: sql.Identifier) -> None:
        if not self.days:
            return
        sums = ("tickets", "payments", "gross_minor", "refund_count", "refunded_minor", "fee_minor",
                "fee_reversed_minor")
        query = sql.SQL(
            "INSERT INTO {table} AS t (organizer_id, currency, day, {sums})"
            " SELECT * FROM unnest(%b::text[], %b::text[], %b::date[], {arrays})"
            " ON CONFLICT (organizer_id, currency, day) DO UPDATE SET {adds}"
        ).format(
            table=table,
            sums=sql.SQL(", ").join(map(sql.Identifier, sums)),
            arrays=sql.SQL(", ").join(sql.SQL("%b::int8[]") for _ in sums),
            adds=sql.SQL(", ").join(
                sql.SQL("{c} = t.{c} + EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in sums
            ),
        )
        keys = list(self.days)
        values = [self.days[k] for k in keys]
        params: list[list[Any]] = [[k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]]
        params += [[getattr(v, s) for v in values] for s in sums]
        conn.execute(query, params)


# --- the read side -------------------------------------------------------------------


@dataclass(frozen=True)
class FeeFigures:
    """One report line: an item (organizer + period) or a per-currency total."""

    currency: str
    tickets: int
    payments: int
    gross_minor: int
    refund_count: int
    refunded_minor: int
    fee_charged_minor: int
    fee_reversed_minor: int
    organizer_id: str | None = None
    period: str | None = None

    @property
    def net_minor(self) -> int:
        return self.gross_minor - self.refunded_minor

    @property
    def fee_minor(self) -> int:
        return self.fee_charged_minor - self.fee_reversed_minor

    def amount(self, minor: int) -> str:
        return Money(minor, self.currency).amount

    def as_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        if self.organizer_id is not None:
            found["organizer_id"] = self.organizer_id
            found["period"] = self.period
        found.update({
            "currency": self.currency,
            "tickets": self.tickets,
            "payments": self.payments,
            "gross": self.amount(self.gross_minor),
            "refunds": self.amount(self.refunded_minor),
            "refund_count": self.refund_count,
            "net": self.amount(self.net_minor),
            "fee_charged": self.amount(self.fee_charged_minor),
            "fee_reversed": self.amount(self.fee_reversed_minor),
            "fee": self.amount(self.fee_minor),
        })
        return found


@dataclass(frozen=True)
class FeeReport:
    items: list[FeeFigures]
    totals: list[FeeFigures]
    filters: dict[str, str | None] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "items": [i.as_dict() for i in self.items],
            "totals": [t.as_dict() for t in self.totals],
            "filters": dict(self.filters),
            "fee_policy": "fee-v1: 5% per payment, half-up to the minor unit; refunds reverse it proportionally",
        }


def _parse_date(value: str | date | None, name: str) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise ValidationFailed({name: ["must be a date as YYYY-MM-DD"]})
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValidationFailed({name: [f"{value!r} is not a calendar date"]}) from None


def _parse_currency(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    code = value.strip().upper()
    minor_digits(code)  # raises CurrencyNotSupported (422 currency_not_supported)
    return code


def _organizer_filter(scope: Scope, organizer: str | None) -> str | None:
    """Organizers see their own figures only; another organizer's id is a 404
    (as for every foreign id), finance may name any organizer or none."""
    if organizer is not None and organizer != "":
        try:
            organizer = str(UUID(organizer))
        except (ValueError, AttributeError, TypeError):
            if scope.organizer_id is not None:
                raise NotFound(f"no organizer {organizer!r}", field="organizer") from None
            raise ValidationFailed({"organizer": ["must be an organizer id"]}) from None
        if not scope.allows(organizer):
            raise NotFound(f"no organizer {organizer}", field="organizer")
        return organizer
    return scope.organizer_id


def _label(start: date, period: str) -> str:
    if period == "day":
        return start.isoformat()
    if period == "month":
        return f"{start.year:04d}-{start.month:02d}"
    return f"{start.year:04d}"


#: The summed columns of a report query, named as ``FeeFigures`` fields.
_SUMS = ("tickets", "payments", "gross_minor", "refund_count", "refunded_minor", "fee_charged_minor",
         "fee_reversed_minor")


def query(
    db: Database, *, scope: Scope = ANYONE, organizer: str | None = None, currency: str | None = None,
    date_from: str | date | None = None, date_to: str | date | None = None, period: str | None = "month",
) -> FeeReport:
    """The fee report for ``scope``.  Dates are UTC calendar days, both bounds
    inclusive; ``period`` is ``day``, ``month`` (default) or ``year``.  Raw
    strings are accepted and validated here so API and CLI refuse alike."""
    period = period or "month"
    if period not in PERIODS:
        raise ValidationFailed({"period": [f"must be one of {', '.join(PERIODS)}"]})
    start = _parse_date(date_from, "from")
    end = _parse_date(date_to, "to")
    if start and end and start > end:
        raise InvalidDateRange(f"{start} is after {end}")
    code = _parse_currency(currency)
    organizer_id = _organizer_filter(scope, organizer)

    conditions: list[sql.Composable] = []
    params: list[Any] = [period]
    for column, op, value in (("organizer_id", "=", organizer_id), ("currency", "=", code),
                              ("day", ">=", start), ("day", "<=", end)):
        if value is not None:
            conditions.append(sql.SQL("{} " + op + " %s").format(sql.Identifier(column)))
            params.append(value)
    where = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("")
    statement = sql.SQL(
        "SELECT organizer_id, currency, date_trunc(%s, day::timestamp)::date AS p,"
        " sum(tickets) AS tickets, sum(payments) AS payments, sum(gross_minor) AS gross_minor,"
        " sum(refund_count) AS refund_count, sum(refunded_minor) AS refunded_minor,"
        " sum(fee_minor) AS fee_charged_minor, sum(fee_reversed_minor) AS fee_reversed_minor"
        " FROM projections.fee_daily{where} GROUP BY organizer_id, currency, p"
        " ORDER BY p, organizer_id, currency"
    ).format(where=where)
    with db.transaction() as conn, conn.cursor(row_factory=dict_row) as cursor:
        rows = cursor.execute(statement, params).fetchall()
    items = [
        FeeFigures(
            organizer_id=r["organizer_id"], currency=r["currency"], period=_label(r["p"], period),
            **{name: int(r[name]) for name in _SUMS},  # sums of bigint are numeric: back to int
        )
        for r in rows
    ]
    filters = {
        "organizer": organizer_id, "currency": code, "from": start.isoformat() if start else None,
        "to": end.isoformat() if end else None, "period": period,
    }
    return FeeReport(items=items, totals=totals(items), filters=filters)


def totals(items: list[FeeFigures]) -> list[FeeFigures]:
    """Per-currency totals: plain integer sums of the rows (never re-rounded)."""
    sums: dict[str, list[int]] = {}
    for i in items:
        acc = sums.setdefault(i.currency, [0] * 7)
        for n, value in enumerate((i.tickets, i.payments, i.gross_minor, i.refund_count,
                                   i.refunded_minor, i.fee_charged_minor, i.fee_reversed_minor)):
            acc[n] += value
    return [
        FeeFigures(currency=code, tickets=acc[0], payments=acc[1], gross_minor=acc[2], refund_count=acc[3],
                   refunded_minor=acc[4], fee_charged_minor=acc[5], fee_reversed_minor=acc[6])
        for code, acc in sorted(sums.items())
    ]


CSV_COLUMNS = ("kind", "organizer_id", "period", "currency", "tickets", "payments", "gross", "refunds",
               "refund_count", "net", "fee_charged", "fee_reversed", "fee")


def csv_lines(report: FeeReport) -> Iterator[str]:
    """RFC 4180 CSV: one ``item`` line per row, then one ``total`` line per
    currency (the ``kind`` column tells them apart, so sums are not doubled)."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for kind, lines in (("item", report.items), ("total", report.totals)):
        for line in lines:
            d = line.as_dict()
            writer.writerow([kind, d.get("organizer_id", ""), d.get("period", "") or ""]
                            + [d[c] for c in CSV_COLUMNS[3:]])
    yield buffer.getvalue()


def to_csv(report: FeeReport) -> str:
    return "".join(csv_lines(report))


def to_table(report: FeeReport) -> Any:
    """A ``rich.table.Table`` for ``ledger report fees`` in a terminal.

    Nothing is ever cut: amounts and counts keep their full width (a column is
    never narrower than its longest figure) and ids fold onto a second line in
    a narrow terminal (``--wide`` keeps one line per row)."""
    from rich.table import Table

    names = ("organizer", "period", "currency", "tickets", "gross", "refunds", "net", "fee")
    rows = [
        (d["organizer_id"], d["period"], d["currency"], str(d["tickets"]), d["gross"], d["refunds"], d["net"], d["fee"])
        for d in (i.as_dict() for i in report.items)
    ]
    total_rows = [
        ("total", "", d["currency"], str(d["tickets"]), d["gross"], d["refunds"], d["net"], d["fee"])
        for d in (t.as_dict() for t in report.totals)
    ]
    table = Table(title="Service fees (R16, fee-v1)", show_footer=False)
    for n, name in enumerate(names):
        text = name in ("organizer", "period", "currency")
        widest = max([len(name), *(len(r[n]) for r in rows + total_rows)])
        table.add_column(name, justify="left" if text else "right", overflow="fold",
                         min_width=None if name == "organizer" else widest, no_wrap=name != "organizer")
    for row in rows:
        table.add_row(*row)
    for row in total_rows:
        table.add_row(*(f"[b]{row[0]}[/b]", *row[1:]), style="bold")
    return table
