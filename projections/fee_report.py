"""Fee reports (R16-R18): per organizer, currency and period, the tickets sold,
gross sales, refunds, net, money owed back and the platform's service fee.

Why the report only *adds*: every fee figure was fixed on its fact when it was
recorded (``PaymentRecorded.fee_minor``; ``fee_reversed_minor`` on refunds,
rejections and cancellations -- ``ledger.fee_policy``).  The view keeps integer
sums of those per organizer, currency, UTC day and fee policy; a report sums days
into periods and rows into per-currency totals.  No rounding happens after the
facts, so every total equals the sum of its rows and of the facts, to the cent,
whatever the grouping.

Policies: each line says which policy computed its fee figures (``fee-v1``
lines stored by the first release stay as they were; new facts are ``fee-v2``,
R18).  Owed back (R17): ``refund_due`` of a line is how much the money owed back
grew (or, by refunds, shrank) through that line's facts, so the sum over every
period is what is owed now, and per line ``gross - refunds - refund_due`` is the
change of ticket money.

Dating: a fact counts in the period of its own date -- a payment by its
payment date, a refund by its refund date, a cancellation by its date (periods
are never rewritten after the fact).
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

from ledger import owed_back
from ledger.domain.registration import Registration
from ledger.errors import NotFound, ValidationFailed
from ledger.fee_policy import POLICY_TEXT
from ledger.money import Money, minor_digits
from ledger.scope import ANYONE, Scope
from projections.as_of import AsOf, parse_as_of, resolve, snapshot
from projections.paging import InvalidDateRange

if TYPE_CHECKING:
    from ledger.database import Database
    from projections.who_paid import WhoPaidRow

PERIODS = ("day", "month", "year")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

#: Registration facts that move money or fees: the lines of the report.
MONEY_EVENTS: tuple[type[Any], ...] = (
    Registration.PaymentRecorded, Registration.RefundRecorded, Registration.Rejected, Registration.Cancelled,
    Registration.DisputeFundsWithdrawn, Registration.DisputeFundsReinstated, Registration.DisputeResolved,
    Registration.PaymentReversed, Registration.RefundFailed,
)

# --- the write side: sums per (organizer, currency, day, policy) --------------------


@dataclass(slots=True)
class FeeDay:
    tickets: int = 0
    payments: int = 0
    gross_minor: int = 0
    refund_count: int = 0
    refunded_minor: int = 0
    refund_due_minor: int = 0
    fee_minor: int = 0
    fee_reversed_minor: int = 0
    withdrawn_minor: int = 0


_DAY_SUMS = ("tickets", "payments", "gross_minor", "refund_count", "refunded_minor", "refund_due_minor",
             "fee_minor", "fee_reversed_minor", "withdrawn_minor")


class FeeDays:
    """A batch's contribution to ``fee_daily``, summed in memory and added to the
    stored sums in one upsert (the batch's transaction makes it exactly-once).

    With the fact's ``position`` each fact's own figures are kept too
    (``fee_facts``): the report "as of" a position sums those up to it."""

    def __init__(self) -> None:
        self.days: dict[tuple[str, str, date, str], FeeDay] = {}
        self.facts: list[tuple[int, tuple[str, str, date, str], FeeDay]] = []

    def _add(self, row: WhoPaidRow, event: Any, fact: FeeDay, position: int | None) -> None:
        policy = getattr(event, "fee_policy", None) or "fee-v2"  # RefundFailed moves no fee
        key = (row.organizer_id, row.currency, event.timestamp.astimezone(UTC).date(), policy)
        found = self.days.get(key)
        if found is None:
            found = self.days[key] = FeeDay()
        for name in _DAY_SUMS:
            setattr(found, name, getattr(found, name) + getattr(fact, name))
        if position is not None:
            self.facts.append((position, key, fact))

    def payment(self, row: WhoPaidRow, event: Any, *, held_before: bool, owed_delta: int,
                position: int | None = None) -> None:
        fact = FeeDay(payments=1, gross_minor=event.amount_minor, fee_minor=event.fee_minor,
                      refund_due_minor=owed_delta)
        if not held_before and owed_back.holds_paid_ticket(row):
            fact.tickets = 1
        self._add(row, event, fact, position)

    def refund(self, row: WhoPaidRow, event: Any, *, owed_delta: int, position: int | None = None) -> None:
        fact = FeeDay(refund_count=1, refunded_minor=event.amount_minor,
                      fee_reversed_minor=event.fee_reversed_minor, refund_due_minor=owed_delta)
        self._add(row, event, fact, position)

    def closed(self, row: WhoPaidRow, event: Any, *, owed_delta: int, position: int | None = None) -> None:
        """A rejection or cancellation: the ticket's money becomes owed back and
        its fee is given back (R17, R18)."""
        if event.fee_reversed_minor == 0 and owed_delta == 0:
            return  # nothing paid: no line
        fact = FeeDay(fee_reversed_minor=event.fee_reversed_minor, refund_due_minor=owed_delta)
        self._add(row, event, fact, position)

    def save_facts(self, conn: psycopg.Connection[Any], table: sql.Identifier) -> None:
        """Each fact's figures with its position (``fee_facts``), by binary COPY."""
        if not self.facts:
            return
        statement = sql.SQL(
            "COPY {table} (position, organizer_id, currency, day, fee_policy, {sums}) FROM STDIN (FORMAT BINARY)"
        ).format(table=table, sums=sql.SQL(", ").join(map(sql.Identifier, _DAY_SUMS)))
        with conn.cursor() as cursor, cursor.copy(statement) as copy:
            copy.set_types(["int8", "text", "text", "date", "text", "int4", "int4", "int8", "int4", "int8",
                            "int8", "int8", "int8", "int8"])
            for position, key, fact in self.facts:
                copy.write_row((position, *key, *(getattr(fact, name) for name in _DAY_SUMS)))

    def corrected(self, row: WhoPaidRow, event: Any, *, owed_delta: int, position: int | None = None) -> None:
        """The provider corrected money (issue 18).  Withdrawn money (a
        dispute's funds, a reversal) is not revenue: it leaves ``net`` as a
        refund does, and the fee on the ticket money it took is given back
        (R18); reinstated money comes back, with its fee; a failed refund
        undoes the refund (its money is owed back again)."""
        fact = FeeDay(refund_due_minor=owed_delta)
        if isinstance(event, Registration.DisputeFundsReinstated):
            fact.withdrawn_minor = -event.amount_minor
            fact.fee_minor = event.fee_minor
        elif isinstance(event, Registration.RefundFailed):
            fact.refunded_minor = -event.amount_minor
        else:
            if not isinstance(event, Registration.DisputeResolved):
                fact.withdrawn_minor = event.amount_minor
            fact.fee_reversed_minor = event.fee_reversed_minor
        self._add(row, event, fact, position)

    def save(self, conn: psycopg.Connection[Any], table: sql.Identifier) -> None:
        if not self.days:
            return
        query = sql.SQL(
            "INSERT INTO {table} AS t (organizer_id, currency, day, fee_policy, {sums})"
            " SELECT * FROM unnest(%b::text[], %b::text[], %b::date[], %b::text[], {arrays})"
            " ON CONFLICT (organizer_id, currency, day, fee_policy) DO UPDATE SET {adds}"
        ).format(
            table=table,
            sums=sql.SQL(", ").join(map(sql.Identifier, _DAY_SUMS)),
            arrays=sql.SQL(", ").join(sql.SQL("%b::int8[]") for _ in _DAY_SUMS),
            adds=sql.SQL(", ").join(
                sql.SQL("{c} = t.{c} + EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in _DAY_SUMS
            ),
        )
        keys = list(self.days)
        values = [self.days[k] for k in keys]
        params: list[list[Any]] = [[k[n] for k in keys] for n in range(4)]
        params += [[getattr(v, s) for v in values] for s in _DAY_SUMS]
        conn.execute(query, params)


# --- the read side -------------------------------------------------------------------


@dataclass(frozen=True)
class FeeFigures:
    """One report line: an item (organizer + period + fee policy) or a
    per-currency total (every policy)."""

    currency: str
    tickets: int
    payments: int
    gross_minor: int
    refund_count: int
    refunded_minor: int
    fee_charged_minor: int
    fee_reversed_minor: int
    refund_due_minor: int = 0
    withdrawn_minor: int = 0
    organizer_id: str | None = None
    period: str | None = None
    fee_policy: str | None = None

    @property
    def net_minor(self) -> int:
        """Gross minus refunds minus what the provider took back (issue 18)."""
        return self.gross_minor - self.refunded_minor - self.withdrawn_minor

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
            found["fee_policy"] = self.fee_policy
        found.update({
            "currency": self.currency,
            "tickets": self.tickets,
            "payments": self.payments,
            "gross": self.amount(self.gross_minor),
            "refunds": self.amount(self.refunded_minor),
            "refund_count": self.refund_count,
            "refund_due": self.amount(self.refund_due_minor),
            "withdrawn": self.amount(self.withdrawn_minor),
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
    as_of: AsOf | None = None  #: when asked for ``?as_of=``
    view_position: int = 0  #: the log position the figures reflect (Ledger-Position)

    def as_dict(self) -> dict[str, Any]:
        found = {
            "items": [i.as_dict() for i in self.items],
            "totals": [t.as_dict() for t in self.totals],
            "filters": dict(self.filters),
            "fee_policy": FEE_POLICIES_TEXT,
        }
        if self.as_of is not None:
            found["as_of"] = self.as_of.as_dict()
        return found


#: The report's note on how fees are computed (every item names its policy).
FEE_POLICIES_TEXT = "; ".join(POLICY_TEXT[p] for p in sorted(POLICY_TEXT, reverse=True))


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


#: Shared with the books (projections/books_query.py): one way to read these filters.
parse_date = _parse_date
parse_currency = _parse_currency
organizer_filter = _organizer_filter


def _label(start: date, period: str) -> str:
    if period == "day":
        return start.isoformat()
    if period == "month":
        return f"{start.year:04d}-{start.month:02d}"
    return f"{start.year:04d}"


#: The summed columns of a report query, named as ``FeeFigures`` fields.
_SUMS = ("tickets", "payments", "gross_minor", "refund_count", "refunded_minor", "fee_charged_minor",
         "fee_reversed_minor", "refund_due_minor", "withdrawn_minor")


def query(
    db: Database, *, scope: Scope = ANYONE, organizer: str | None = None, currency: str | None = None,
    date_from: str | date | None = None, date_to: str | date | None = None, period: str | None = "month",
    as_of: str | None = None,
) -> FeeReport:
    """The fee report for ``scope``.  Dates are UTC calendar days, both bounds
    inclusive; ``period`` is ``day``, ``month`` (default) or ``year``.  Raw
    strings are accepted and validated here so API and CLI refuse alike.

    ``as_of`` (``position:<n>`` or a time, projections/as_of.py): the report as
    the ledger stood then -- the facts up to that position (``fee_facts``)."""
    wanted = parse_as_of(as_of)
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
        "SELECT organizer_id, currency, date_trunc(%s, day::timestamp)::date AS p, fee_policy,"
        " sum(tickets) AS tickets, sum(payments) AS payments, sum(gross_minor) AS gross_minor,"
        " sum(refund_count) AS refund_count, sum(refunded_minor) AS refunded_minor,"
        " sum(fee_minor) AS fee_charged_minor, sum(fee_reversed_minor) AS fee_reversed_minor,"
        " sum(refund_due_minor) AS refund_due_minor, sum(withdrawn_minor) AS withdrawn_minor"
        " FROM {source}{where} GROUP BY organizer_id, currency, p, fee_policy"
        " ORDER BY p, organizer_id, currency, fee_policy"
    )
    point: AsOf | None = None
    with db.transaction() as conn, conn.cursor(row_factory=dict_row) as cursor:
        view_position = snapshot(conn)
        source: sql.Composable = sql.SQL("projections.fee_daily")
        if wanted is not None:
            point = resolve(conn, view_position, wanted)
            source = sql.SQL("(SELECT * FROM projections.fee_facts WHERE position <= {}) AS facts").format(
                sql.Literal(point.position))
        rows = cursor.execute(statement.format(source=source, where=where), params).fetchall()
    items = [
        FeeFigures(
            organizer_id=r["organizer_id"], currency=r["currency"], period=_label(r["p"], period),
            # sums of bigint are numeric: back to int
            fee_policy=r["fee_policy"], **{name: int(r[name]) for name in _SUMS},
        )
        for r in rows
    ]
    filters = {
        "organizer": organizer_id, "currency": code, "from": start.isoformat() if start else None,
        "to": end.isoformat() if end else None, "period": period,
    }
    return FeeReport(items=items, totals=totals(items), filters=filters, as_of=point, view_position=view_position)


def totals(items: list[FeeFigures]) -> list[FeeFigures]:
    """Per-currency totals: plain integer sums of the rows (never re-rounded)."""
    sums: dict[str, dict[str, int]] = {}
    for i in items:
        acc = sums.setdefault(i.currency, dict.fromkeys(_SUMS, 0))
        for name in _SUMS:
            acc[name] += getattr(i, name)
    return [
        FeeFigures(currency=code, tickets=acc["tickets"], payments=acc["payments"], gross_minor=acc["gross_minor"],
                   refund_count=acc["refund_count"], refunded_minor=acc["refunded_minor"],
                   fee_charged_minor=acc["fee_charged_minor"], fee_reversed_minor=acc["fee_reversed_minor"],
                   refund_due_minor=acc["refund_due_minor"], withdrawn_minor=acc["withdrawn_minor"])
        for code, acc in sorted(sums.items())
    ]


#: ``refund_due`` and ``fee_policy`` were added after the first release: at the
#: end, so that readers addressing columns by position keep working.
#: ``withdrawn`` (issue 18) likewise, after ``fee_policy``.
CSV_COLUMNS = ("kind", "organizer_id", "period", "currency", "tickets", "payments", "gross", "refunds",
               "refund_count", "net", "fee_charged", "fee_reversed", "fee", "refund_due", "fee_policy", "withdrawn")
_CSV_FIGURES = CSV_COLUMNS[3:-2]


def csv_lines(report: FeeReport) -> Iterator[str]:
    """RFC 4180 CSV: one ``item`` line per row, then one ``total`` line per
    currency (the ``kind`` column tells them apart, so sums are not doubled;
    a total's ``fee_policy`` is empty: it sums every policy)."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for kind, lines in (("item", report.items), ("total", report.totals)):
        for line in lines:
            d = line.as_dict()
            writer.writerow([kind, d.get("organizer_id", ""), d.get("period", "") or ""]
                            + [d[c] for c in _CSV_FIGURES] + [d.get("fee_policy") or "", d["withdrawn"]])
    yield buffer.getvalue()


def to_csv(report: FeeReport) -> str:
    return "".join(csv_lines(report))


def to_table(report: FeeReport) -> Any:
    """A ``rich.table.Table`` for ``ledger report fees`` in a terminal.

    Nothing is ever cut: amounts and counts keep their full width (a column is
    never narrower than its longest figure) and ids fold onto a second line in
    a narrow terminal (``--wide`` keeps one line per row)."""
    from rich.table import Table

    left = ("organizer", "period", "policy", "currency")
    names = (*left, "tickets", "gross", "refunds", "refund due", "net", "fee")
    rows = [
        (d["organizer_id"], d["period"], d["fee_policy"], d["currency"], str(d["tickets"]), d["gross"],
         d["refunds"], d["refund_due"], d["net"], d["fee"])
        for d in (i.as_dict() for i in report.items)
    ]
    total_rows = [
        ("total", "", "", d["currency"], str(d["tickets"]), d["gross"], d["refunds"], d["refund_due"], d["net"],
         d["fee"])
        for d in (t.as_dict() for t in report.totals)
    ]
    table = Table(title="Service fees (R16-R18) and money owed back (R17)", show_footer=False)
    for n, name in enumerate(names):
        widest = max([len(name), *(len(r[n]) for r in rows + total_rows)])
        table.add_column(name, justify="left" if name in left else "right", overflow="fold",
                         min_width=None if name == "organizer" else widest, no_wrap=name != "organizer")
    for row in rows:
        table.add_row(*row)
    for row in total_rows:
        table.add_row(*(f"[b]{row[0]}[/b]", *row[1:]), style="bold")
    return table
