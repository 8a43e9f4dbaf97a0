"""Reads of the books (R22): the journal, the trial balance (now or as of a
point of the log) and an organizer's statement.

Every read runs in one REPEATABLE READ snapshot together with the view's
position, so the ``Ledger-Position`` an answer carries is exactly the log
position its figures reflect.

**As of** (projections/as_of.py): the trial balance as of ``n`` reads, per
account, its latest journal line at or before ``n`` (each line carries the
account's running totals): one index probe per account, no replay.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from operator import itemgetter
from typing import TYPE_CHECKING, Any, NamedTuple, overload

import psycopg
from psycopg.rows import dict_row

from ledger.errors import ValidationFailed
from ledger.money import Money
from ledger.scope import ANYONE, Scope
from projections import books
from projections.as_of import AsOf, AsOfRequest, parse_as_of, resolve, snapshot
from projections.fee_report import organizer_filter, parse_currency, parse_date
from projections.paging import InvalidDateRange, parse_limit, parse_position

if TYPE_CHECKING:
    from ledger.database import Database

def _amount(minor: int, currency: str) -> str:
    return Money(minor, currency).amount


# --- trial balance ------------------------------------------------------------------


class AccountBalance(NamedTuple):
    """One account's totals (a named tuple: the trial balance of every
    organizer builds tens of thousands of them straight from the rows)."""

    organizer_id: str
    currency: str
    account: str
    debit_minor: int
    credit_minor: int

    @property
    def balance_minor(self) -> int:
        """Debits minus credits (positive: a debit balance)."""
        return self.debit_minor - self.credit_minor

    def as_dict(self) -> dict[str, Any]:
        return {
            "account": self.account, "organizer_id": self.organizer_id, "currency": self.currency,
            "debit": _amount(self.debit_minor, self.currency), "credit": _amount(self.credit_minor, self.currency),
            "balance": _amount(self.balance_minor, self.currency),
        }


Row = tuple[str, str, str, int, int]  # organizer_id, currency, account, debit_minor, credit_minor


class Accounts(Sequence[AccountBalance]):
    """An answer's accounts, kept as the rows the database returned (plain
    tuples in :class:`AccountBalance`'s field order); an ``AccountBalance`` is
    made as each one is read.  Why: the trial balance of every organizer has
    tens of thousands of accounts, and that many named tuples kept per answer
    made the garbage collector walk them again and again (it drops plain tuples
    of strings and integers from its walks, not named tuples)."""

    __slots__ = ("_rows",)

    def __init__(self, rows: list[Row]) -> None:
        self._rows = rows

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, index: int) -> AccountBalance: ...

    @overload
    def __getitem__(self, index: slice) -> list[AccountBalance]: ...

    def __getitem__(self, index: int | slice) -> AccountBalance | list[AccountBalance]:
        if isinstance(index, slice):
            return list(map(AccountBalance._make, self._rows[index]))
        return AccountBalance._make(self._rows[index])

    def __iter__(self) -> Iterator[AccountBalance]:
        return map(AccountBalance._make, self._rows)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Accounts):
            return self._rows == other._rows
        if isinstance(other, list | tuple):
            return self._rows == list(other)  # a named tuple equals the plain tuple of its fields
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable rows: like a list

    def __repr__(self) -> str:
        return f"Accounts({list(self)!r})"


@dataclass(frozen=True)
class CurrencyTotal:
    currency: str
    debit_minor: int
    credit_minor: int

    @property
    def balanced(self) -> bool:
        return self.debit_minor == self.credit_minor

    def as_dict(self) -> dict[str, Any]:
        return {"currency": self.currency, "debit": _amount(self.debit_minor, self.currency),
                "credit": _amount(self.credit_minor, self.currency), "balanced": self.balanced}


@dataclass(frozen=True)
class TrialBalance:
    as_of: AsOf
    accounts: Accounts
    totals: list[CurrencyTotal]
    view_position: int

    @property
    def balanced(self) -> bool:
        return all(t.balanced for t in self.totals)

    def as_dict(self) -> dict[str, Any]:
        return {"as_of": self.as_of.as_dict(), "accounts": [a.as_dict() for a in self.accounts],
                "totals": [t.as_dict() for t in self.totals], "balanced": self.balanced}


#: Accounts in the order they are shown: per currency and organizer, money held
#: first, then the chart's order (docs/books.md).  Byte order ("C"): ids and
#: codes are ASCII.  ``chart_order`` is a generated column of book_accounts and
#: the index ``book_accounts_shown`` holds the accounts in exactly this order,
#: so the trial balance of every organizer is read from it without a sort.
_ORDER = ' ORDER BY a.currency COLLATE "C", a.organizer_id COLLATE "C", a.chart_order, a.account COLLATE "C"'


_CURRENCY, _DEBIT, _CREDIT = itemgetter(1), itemgetter(3), itemgetter(4)


def _filters(organizer_id: str | None, code: str | None, prefix: str = "a.") -> tuple[str, list[Any]]:
    conditions, params = [], []
    if organizer_id is not None:
        conditions.append(f"{prefix}organizer_id = %s")
        params.append(organizer_id)
    if code is not None:
        conditions.append(f"{prefix}currency = %s")
        params.append(code)
    return (" WHERE " + " AND ".join(conditions) if conditions else ""), params


def _balances(conn: psycopg.Connection[Any], position: int, view_position: int, organizer_id: str | None,
              code: str | None) -> list[Row]:
    """Account totals at ``position``, in :data:`_ORDER`: the present from
    ``book_accounts``; the past of one organizer by one index probe per account
    (its latest line at or before the position); the past of everyone from the
    nearest checkpoint (docs/books.md)."""
    where, params = _filters(organizer_id, code)
    if position >= view_position:
        if organizer_id is None:
            # Thousands of accounts, which book_accounts_shown holds in this
            # order.  Left to itself the planner may sort them instead (it
            # prices each visit of a table page not yet marked all-visible),
            # a sort that costs more than the whole scan of the index.
            conn.execute("SET LOCAL enable_sort = off")
        query = ("SELECT a.organizer_id, a.currency, a.account, a.debit_minor, a.credit_minor"
                 f" FROM projections.book_accounts a{where}{_ORDER}")
        return conn.execute(query, params, prepare=True, binary=True).fetchall()
    if organizer_id is not None:
        query = (
            "SELECT a.organizer_id, a.currency, a.account, l.debit_total, l.credit_total"
            " FROM projections.book_accounts a CROSS JOIN LATERAL (SELECT j.debit_total, j.credit_total"
            " FROM projections.journal_lines j WHERE j.account_id = a.account_id AND j.position <= %s"
            f" ORDER BY j.position DESC, j.line_no DESC LIMIT 1) l{where}{_ORDER}")
        return conn.execute(query, [position, *params], prepare=True, binary=True).fetchall()
    return _past_of_everyone(conn, position, view_position, where, params)


#: The totals "as of" a position, every organizer: a base (the totals at a
#: checkpoint, or the present ones) plus (forward) or minus (backward) the lines
#: between it and the position, summed per account.  An account whose totals
#: there are zero on both sides had no line yet (every line moves one side by
#: more than zero) and is left out, as the accounts created after the position.
_PAST = (
    "SELECT a.organizer_id, a.currency, a.account, t.d, t.c FROM ("
    " SELECT account_id, sum(d)::bigint AS d, sum(c)::bigint AS c FROM ("
    " {base} UNION ALL SELECT account_id, {sign}debit_minor, {sign}credit_minor FROM projections.journal_lines"
    " WHERE position > %s AND position <= %s) u GROUP BY account_id HAVING sum(d) <> 0 OR sum(c) <> 0"
    ") t JOIN projections.book_accounts a ON a.account_id = t.account_id{where}" + _ORDER)
_AT_CHECKPOINT = ("SELECT account_id, debit_total AS d, credit_total AS c FROM projections.book_checkpoints"
                  " WHERE position = %s")
_PRESENT = "SELECT account_id, debit_minor AS d, credit_minor AS c FROM projections.book_accounts"


def _past_of_everyone(conn: psycopg.Connection[Any], position: int, view_position: int, where: str,
                      params: list[Any]) -> list[Row]:
    """From the checkpoint at or before ``position`` forward, or back from the
    next checkpoint (or from the present, the totals in ``book_accounts``)
    when that one is nearer: at most half the checkpoint interval of lines is
    summed, and they are read from the lines' primary key alone (it holds the
    account and the amounts)."""
    found = conn.execute(
        "SELECT (SELECT max(position) FROM projections.book_checkpoints WHERE position <= %s),"
        " (SELECT min(position) FROM projections.book_checkpoints WHERE position > %s)",
        (position, position)).fetchone()
    before = int(found[0]) if found and found[0] is not None else 0
    after = int(found[1]) if found and found[1] is not None else None
    if position - before <= (view_position if after is None else after) - position:
        query = _PAST.format(base=_AT_CHECKPOINT, sign="", where=where)
        values = [before, before, position]
    elif after is None:
        query = _PAST.format(base=_PRESENT, sign="-", where=where)
        values = [position, view_position]
    else:
        query = _PAST.format(base=_AT_CHECKPOINT, sign="-", where=where)
        values = [after, position, after]
    return conn.execute(query, [*values, *params], prepare=True, binary=True).fetchall()


def totals(rows: Sequence[Row]) -> list[CurrencyTotal]:
    """Debits and credits per currency, over rows grouped by currency as
    :data:`_ORDER` lists them (byte order, as Python compares the codes): each
    currency's rows are found by bisection and summed as column slices (C
    loops; the trial balance of every organizer adds up tens of thousands)."""
    found: list[CurrencyTotal] = []
    start, end = 0, len(rows)
    while start < end:
        currency = rows[start][1]
        stop = bisect_right(rows, currency, start, end, key=_CURRENCY)
        group = rows[start:stop]
        found.append(CurrencyTotal(currency, sum(map(_DEBIT, group)), sum(map(_CREDIT, group))))
        start = stop
    return found


def trial_balance(
    db: Database, *, scope: Scope = ANYONE, organizer: str | None = None, currency: str | None = None,
    as_of: str | AsOfRequest | None = None,
) -> TrialBalance:
    """Every account's debits, credits and balance; totals per currency."""
    wanted = parse_as_of(as_of) if isinstance(as_of, str | None) else as_of
    code = parse_currency(currency)
    organizer_id = organizer_filter(scope, organizer)
    with db.transaction() as conn:
        view_position = snapshot(conn)
        point = resolve(conn, view_position, wanted)
        rows = _balances(conn, point.position, view_position, organizer_id, code)
    return TrialBalance(point, Accounts(rows), totals(rows), view_position)


# --- journal -------------------------------------------------------------------------


@dataclass(frozen=True)
class JournalPage:
    items: list[dict[str, Any]]
    next: str | None
    view_position: int

    def as_dict(self) -> dict[str, Any]:
        return {"items": self.items, "next": self.next}


def journal(
    db: Database, *, scope: Scope = ANYONE, organizer: str | None = None, account: str | None = None,
    after: str | int | None = None, limit: str | int | None = None, currency: str | None = None,
    as_of: str | None = None,
) -> JournalPage:
    """Entries after the position ``after``, in log order, with their lines
    (with ``as_of``: only those up to that point)."""
    wanted = parse_as_of(as_of)
    start = parse_position(after)
    size = parse_limit(limit)
    code = parse_currency(currency)
    organizer_id = organizer_filter(scope, organizer)
    if account is not None and account != "" and not books.is_account_name(account):
        raise ValidationFailed({"account": ["is not an account of the chart"]})
    conditions: list[str] = ["e.position > %s"]
    params: list[Any] = [start]
    if organizer_id is not None:
        conditions.append("e.organizer_id = %s")
        params.append(organizer_id)
    if code is not None:
        conditions.append("e.currency = %s")
        params.append(code)
    if account:
        conditions.append("EXISTS (SELECT 1 FROM projections.journal_lines x WHERE x.position = e.position"
                          " AND x.account = %s)")
        params.append(account)
    with db.transaction() as conn, conn.cursor(row_factory=dict_row) as cursor:
        view_position = snapshot(conn)
        if wanted is not None:
            conditions.append("e.position <= %s")
            params.append(resolve(conn, view_position, wanted).position)
        entries = cursor.execute(
            "SELECT e.position, e.event_id, e.kind, e.organizer_id, e.currency, e.registration_id,"
            " e.paid_event_id, e.occurred_at FROM projections.journal_entries e WHERE "
            + " AND ".join(conditions) + " ORDER BY e.position LIMIT %s", [*params, size + 1]).fetchall()
        more = len(entries) > size
        entries = entries[:size]
        lines: dict[int, list[dict[str, Any]]] = {}
        if entries:
            for r in cursor.execute(
                "SELECT position, account, debit_minor, credit_minor, currency FROM projections.journal_lines"
                " WHERE position = ANY(%s) ORDER BY position, line_no", ([e["position"] for e in entries],)):
                line: dict[str, Any] = {"account": r["account"]}
                if r["debit_minor"]:
                    line["debit"] = _amount(r["debit_minor"], r["currency"])
                else:
                    line["credit"] = _amount(r["credit_minor"], r["currency"])
                lines.setdefault(r["position"], []).append(line)
    items = [{
        "entry_id": e["position"], "position": e["position"], "event_id": str(e["event_id"]), "type": e["kind"],
        "organizer_id": e["organizer_id"], "currency": e["currency"], "registration_id": str(e["registration_id"]),
        "paid_event_id": str(e["paid_event_id"]), "occurred_at": e["occurred_at"].isoformat(),
        "lines": lines.get(e["position"], []),
    } for e in entries]
    return JournalPage(items, str(entries[-1]["position"]) if more and entries else None, view_position)


# --- statement -----------------------------------------------------------------------


@dataclass
class StatementFigures:
    """One currency of an organizer's statement.  The balance is what the
    organizer keeps: ticket revenue minus the service fee owed."""

    currency: str
    opening_minor: int = 0
    received_minor: int = 0
    refunds_minor: int = 0
    withdrawn_minor: int = 0  # taken back by providers in the period (disputes, reversals)
    owed_back_minor: int = 0  # change of money owed back in the period
    fee_minor: int = 0  # change of the fee owed in the period
    held_minor: int = 0  # money held (net of refunds) at the end
    owed_back_total_minor: int = 0  # money owed back at the end
    points: list[tuple[date, int]] = field(default_factory=list)

    @property
    def sales_minor(self) -> int:
        """Ticket money the period brought (received − refunds − withdrawn −
        owed back)."""
        return self.received_minor - self.refunds_minor - self.withdrawn_minor - self.owed_back_minor

    @property
    def closing_minor(self) -> int:
        return self.opening_minor + self.sales_minor - self.fee_minor

    def as_dict(self) -> dict[str, Any]:
        a = self.currency
        return {
            "currency": a, "opening_balance": _amount(self.opening_minor, a),
            "received": _amount(self.received_minor, a), "refunds": _amount(self.refunds_minor, a),
            "withdrawn": _amount(self.withdrawn_minor, a),
            "owed_back": _amount(self.owed_back_minor, a), "sales": _amount(self.sales_minor, a),
            "fee": _amount(self.fee_minor, a), "closing_balance": _amount(self.closing_minor, a),
            "held": _amount(self.held_minor, a), "owed_back_total": _amount(self.owed_back_total_minor, a),
            "balance_by_day": [{"day": d.isoformat(), "balance": _amount(v, a)} for d, v in self.points],
        }


@dataclass(frozen=True)
class Statement:
    organizer_id: str
    date_from: date | None
    date_to: date | None
    currencies: list[StatementFigures]
    view_position: int

    def as_dict(self) -> dict[str, Any]:
        return {"organizer_id": self.organizer_id,
                "from": self.date_from.isoformat() if self.date_from else None,
                "to": self.date_to.isoformat() if self.date_to else None,
                "currencies": [c.as_dict() for c in self.currencies]}


def _effect(account: str, debit: int, credit: int) -> dict[str, int]:
    """What a line does to the statement's figures."""
    credit_up = credit - debit
    if account.startswith(books.HELD):
        return {"received": debit, "held": debit - credit}
    if account == books.REFUNDS_PAID:
        return {"refunds": credit - debit, "held": debit - credit}
    if account == books.WITHDRAWN:
        return {"withdrawn": credit - debit, "held": debit - credit}
    if account == books.OWED_BACK:
        return {"owed": credit_up}
    if account == books.TICKET_REVENUE:
        return {"ticket": credit_up}
    if account == books.FEE_PAYABLE:
        return {"fee": credit_up}
    return {}


def statement(
    db: Database, organizer: str, *, scope: Scope = ANYONE, date_from: str | date | None = None,
    date_to: str | date | None = None, currency: str | None = None,
) -> Statement:
    """The organizer's statement over UTC days ``from``..``to`` (inclusive):
    opening balance, received, refunds, owed back, sales, fee, closing balance,
    and the closing balance of each day with a money fact (the chart)."""
    start = parse_date(date_from, "from")
    end = parse_date(date_to, "to")
    if start and end and start > end:
        raise InvalidDateRange(f"{start} is after {end}")
    code = parse_currency(currency)
    organizer_id = organizer_filter(scope, organizer)
    assert organizer_id is not None
    conditions: list[str] = ["l.organizer_id = %s"]
    params: list[Any] = [organizer_id]
    if code is not None:
        conditions.append("l.currency = %s")
        params.append(code)
    if end is not None:
        conditions.append("e.occurred_at < %s")
        params.append(datetime.combine(end + timedelta(days=1), datetime.min.time(), UTC))
    with db.transaction() as conn:
        view_position = snapshot(conn)
        rows = conn.execute(
            "SELECT l.currency, l.account, (e.occurred_at AT TIME ZONE 'UTC')::date AS day,"
            " sum(l.debit_minor), sum(l.credit_minor) FROM projections.journal_lines l"
            " JOIN projections.journal_entries e ON e.position = l.position WHERE " + " AND ".join(conditions)
            + " GROUP BY 1, 2, 3 ORDER BY 3", params).fetchall()
    found: dict[str, StatementFigures] = {}
    daily: dict[str, dict[date, int]] = {}
    for cur, account, day, debit, credit in rows:
        figures = found.setdefault(cur, StatementFigures(cur))
        effect = _effect(account, int(debit), int(credit))
        figures.held_minor += effect.get("held", 0)
        figures.owed_back_total_minor += effect.get("owed", 0)
        change = effect.get("ticket", 0) - effect.get("fee", 0)  # the balance moves by these
        if start is not None and day < start:
            figures.opening_minor += change
            continue
        figures.received_minor += effect.get("received", 0)
        figures.refunds_minor += effect.get("refunds", 0)
        figures.withdrawn_minor += effect.get("withdrawn", 0)
        figures.owed_back_minor += effect.get("owed", 0)
        figures.fee_minor += effect.get("fee", 0)
        per_day = daily.setdefault(cur, {})
        per_day[day] = per_day.get(day, 0) + change
    for cur, figures in found.items():
        running = figures.opening_minor
        for day in sorted(daily.get(cur, {})):
            running += daily[cur][day]
            figures.points.append((day, running))
    if code is not None and code not in found:
        found[code] = StatementFigures(code)
    return Statement(organizer_id, start, end, [found[c] for c in sorted(found)], view_position)


STATEMENT_CSV_COLUMNS = ("organizer_id", "from", "to", "currency", "opening_balance", "received", "refunds",
                         "owed_back", "sales", "fee", "closing_balance", "held", "owed_back_total", "withdrawn")


def statement_csv(found: Statement) -> Iterator[str]:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(STATEMENT_CSV_COLUMNS)
    head = found.as_dict()
    for figures in head["currencies"]:
        writer.writerow([head["organizer_id"], head["from"] or "", head["to"] or "",
                         *(figures[c] for c in STATEMENT_CSV_COLUMNS[3:])])
    yield buffer.getvalue()


# --- the books check themselves (ledger status, /readyz) ---------------------------------


@dataclass(frozen=True)
class BooksCheck:
    """Whether the books add up at the views' position: per currency debits =
    credits, and per organizer and currency money held net of refunds = ticket
    revenue + owed back, and fee expense = fee owed.  ``problems`` says what
    does not, in words (it must never happen: the posting rules and the
    database both refuse an unbalanced entry)."""

    position: int
    problems: list[str]

    @property
    def balanced(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"balanced": self.balanced, "position": self.position, "problems": list(self.problems)}


def check(db: Database) -> BooksCheck:
    """Sums over the account totals only (a few rows per organizer): cheap
    enough for every readiness probe."""
    problems: list[str] = []
    with db.transaction() as conn:
        position = snapshot(conn)
        for currency, debit, credit in conn.execute(
            "SELECT currency, sum(debit_minor), sum(credit_minor) FROM projections.book_accounts"
            " GROUP BY currency HAVING sum(debit_minor) <> sum(credit_minor) ORDER BY currency").fetchall():
            problems.append(f"{currency}: debits {_amount(int(debit), currency)} differ from credits "
                            f"{_amount(int(credit), currency)}")
        for organizer_id, currency, held_net, owed_total, fee_gap in conn.execute(
            "SELECT organizer_id, currency,"
            " sum(CASE WHEN account LIKE 'held:%%' OR account IN ('refunds_paid', 'withdrawn')"
            " THEN debit_minor - credit_minor"
            " ELSE 0 END),"
            " sum(CASE WHEN account IN ('ticket_revenue', 'owed_back') THEN credit_minor - debit_minor ELSE 0 END),"
            " sum(CASE WHEN account = 'fee_expense' THEN debit_minor - credit_minor"
            " WHEN account = 'fee_payable' THEN debit_minor - credit_minor ELSE 0 END)"
            " FROM projections.book_accounts GROUP BY organizer_id, currency"
            " HAVING sum(CASE WHEN account LIKE 'held:%%' OR account IN ('refunds_paid', 'withdrawn')"
            " THEN debit_minor - credit_minor"
            " ELSE 0 END) <> sum(CASE WHEN account IN ('ticket_revenue', 'owed_back') THEN credit_minor - debit_minor"
            " ELSE 0 END) OR sum(CASE WHEN account IN ('fee_expense', 'fee_payable') THEN debit_minor - credit_minor"
            " ELSE 0 END) <> 0 ORDER BY 1, 2 LIMIT 20").fetchall():
            problems.append(
                f"organizer {organizer_id} {currency}: money held {_amount(int(held_net), currency)}, ticket revenue "
                f"and owed back {_amount(int(owed_total), currency)}, fee difference "
                f"{_amount(int(fee_gap), currency)}")
    return BooksCheck(position, problems)
