"""The books (R22): every money fact posts a balanced double-entry journal
entry, per organizer and currency, as a view of the event log.

**The chart of accounts** (per organizer and currency; docs/books.md says why):

==================  ========  =====================================================
account             normal    what it holds
==================  ========  =====================================================
``held:<kind>``     debit     money received at a provider connection (``stripe``,
                              ``paypal``, ``payu`` …) or recorded by hand (``manual``)
``refunds_paid``    credit    refunds paid out to payers (a contra account of the
                              money held: a refund event does not name the connection)
``ticket_revenue``  credit    ticket money: what pays for tickets held (R17)
``owed_back``       credit    money owed back to payers (R17)
``withdrawn``       credit    money a provider took back (disputes, reversals), net of
                              what it reinstated (a contra account of the money held)
``fee_expense``     debit     the platform's service fee, the organizer's cost (R16, R18)
``fee_payable``     credit    the same fee, owed by the organizer to the platform
==================  ========  =====================================================

So at every position, per organizer and currency:
``held − refunds_paid − withdrawn = ticket_revenue + owed_back`` (paid − refunded = ticket +
owed back, ``ledger.owed_back``) and ``fee_expense = fee_payable``.

**The posting rules** are :data:`POSTINGS`: one function per event type, each
given the :class:`Fact` (the event, the registration before and after it) and
answering the lines.  The money split is never re-derived here: ``before`` and
``after`` come from the who-paid row, which applies ``ledger.owed_back`` (the
aggregate's own rules); the fee figures are the ones stored on the facts.
A new money event (a dispute, a reversal …) is one more function in
:data:`POSTINGS` (and the who-paid change it implies).

**Storage** (``journal_entries``, ``journal_lines``, ``book_accounts`` in each
generation, ledger/migrations/0011_books.sql): an entry's id is its log
position; every line carries its account's running totals, so "as of position
n" is the latest line per account at or before n.  :class:`Journal` collects a
batch's entries and writes them with the batch (same transaction, so exactly
once).  Balance is checked here (:func:`check_balanced`, before anything is
written) and again by the database (a statement trigger on the lines).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple
from uuid import UUID

import psycopg
from psycopg import sql

from ledger import owed_back
from ledger.domain.registration import Registration
from ledger.event_log import PUBLIC_TYPES, event_id

if TYPE_CHECKING:
    from projections.who_paid import WhoPaidRow

HELD = "held:"
REFUNDS_PAID = "refunds_paid"
TICKET_REVENUE = "ticket_revenue"
OWED_BACK = "owed_back"
FEE_EXPENSE = "fee_expense"
FEE_PAYABLE = "fee_payable"
WITHDRAWN = "withdrawn"

#: The fixed accounts, in the order they are shown (``held:<kind>`` come first).
FIXED_ACCOUNTS = (REFUNDS_PAID, WITHDRAWN, TICKET_REVENUE, OWED_BACK, FEE_EXPENSE, FEE_PAYABLE)

#: Accounts whose balance is normally on the debit side (the others: credit).
DEBIT_NORMAL = (HELD, FEE_EXPENSE)

#: What each account means, for people (pages, the CLI, docs/books.md).
DESCRIPTIONS = {
    REFUNDS_PAID: "refunds paid out to payers",
    WITHDRAWN: "money taken back by providers (disputes, reversals)",
    TICKET_REVENUE: "ticket revenue (money paying for tickets held)",
    OWED_BACK: "money owed back to payers",
    FEE_EXPENSE: "service fee (the organizer's cost)",
    FEE_PAYABLE: "service fee owed to the platform",
}


def held(kind: str) -> str:
    """The account of money held at one kind of provider connection."""
    return f"{HELD}{kind}"


def describe(account: str) -> str:
    if account.startswith(HELD):
        return f"money held at {account.removeprefix(HELD)}"
    return DESCRIPTIONS.get(account, account)


def is_debit_normal(account: str) -> bool:
    return account.startswith(DEBIT_NORMAL)


def is_account_name(value: str) -> bool:
    """A name this chart can produce (for filters: anything else is a 422)."""
    if value in FIXED_ACCOUNTS:
        return True
    kind = value.removeprefix(HELD)
    return value.startswith(HELD) and 0 < len(kind) <= 40 and kind.replace("_", "").isalnum() and kind.isascii()


#: A checkpoint of every account's totals is taken when a batch crosses a
#: multiple of this many log positions (``book_checkpoints``).
CHECKPOINT_EVERY = 20_000


class Unbalanced(Exception):
    """An entry whose debits and credits differ (must never happen: R22)."""


class Split(NamedTuple):
    """A registration's money at one point (see ``ledger.owed_back``).  Named
    tuples here and for lines: the runner builds several per money fact."""

    paid: int
    refunded: int
    ticket: int
    owed: int

    @classmethod
    def of(cls, row: WhoPaidRow) -> Split:
        return cls(row.paid_minor, row.refunded_minor, row.ticket_minor, owed_back.owed_minor(row))


@dataclass(frozen=True, slots=True)
class Fact:
    """A money event with the registration before and after it."""

    position: int
    event: Any
    row: WhoPaidRow  # after the event
    before: Split
    after: Split


class Line(NamedTuple):
    account: str
    debit: int = 0
    credit: int = 0


def _signed(account: str, credit_increase: int) -> list[Line]:
    """A line that raises a credit-normal ``account`` by ``credit_increase``
    (a decrease is a debit); none for 0."""
    if credit_increase > 0:
        return [Line(account, credit=credit_increase)]
    if credit_increase < 0:
        return [Line(account, debit=-credit_increase)]
    return []


def _money_split(fact: Fact) -> list[Line]:
    """Ticket revenue and money owed back move as the fact moved them (R17)."""
    return (_signed(TICKET_REVENUE, fact.after.ticket - fact.before.ticket)
            + _signed(OWED_BACK, fact.after.owed - fact.before.owed))


def _fee(charged: int, reversed_: int) -> list[Line]:
    """The fee the fact charged (R16) or gave back (R18), as stored on it."""
    lines: list[Line] = []
    if charged:
        lines += [Line(FEE_EXPENSE, debit=charged), Line(FEE_PAYABLE, credit=charged)]
    if reversed_:
        lines += [Line(FEE_PAYABLE, debit=reversed_), Line(FEE_EXPENSE, credit=reversed_)]
    return lines


# --- the posting rules: one function per event type -----------------------------------


def payment_recorded(fact: Fact) -> list[Line]:
    """Money arrived at a connection: held there; it pays for the ticket or is
    owed back (as the split says); its fee is charged."""
    e = fact.event
    return [Line(held(e.provider), debit=e.amount_minor), *_money_split(fact), *_fee(e.fee_minor, 0)]


def refund_recorded(fact: Fact) -> list[Line]:
    """Money paid back: taken from what is owed back first, then the ticket
    (R17, R19); the fee on ticket money given back is reversed (R18)."""
    e = fact.event
    return [*_money_split(fact), Line(REFUNDS_PAID, credit=e.amount_minor), *_fee(0, e.fee_reversed_minor)]


def participant_rejected(fact: Fact) -> list[Line]:
    """The ticket is lost: its money becomes owed back, its fee goes back."""
    return [*_money_split(fact), *_fee(0, fact.event.fee_reversed_minor)]


def registration_cancelled(fact: Fact) -> list[Line]:
    """The event was cancelled: as a rejection."""
    return [*_money_split(fact), *_fee(0, fact.event.fee_reversed_minor)]


def funds_withdrawn(fact: Fact) -> list[Line]:
    """A provider took money back (a dispute's funds or a reversal): it leaves
    what is owed back first, then the ticket (as a refund does, R17), and the
    fee on the ticket money it took is given back (R18)."""
    e = fact.event
    return [*_money_split(fact), Line(WITHDRAWN, credit=e.amount_minor), *_fee(0, e.fee_reversed_minor)]


def funds_reinstated(fact: Fact) -> list[Line]:
    """The provider gave withdrawn money back: ticket money (with its fee
    charged again) or owed back, as the split says."""
    e = fact.event
    return [Line(WITHDRAWN, debit=e.amount_minor), *_money_split(fact), *_fee(e.fee_minor, 0)]


def dispute_resolved(fact: Fact) -> list[Line]:
    """Lost: the ticket ends, money still held for it is owed back and its fee
    goes back.  Won: nothing moves (no entry)."""
    return [*_money_split(fact), *_fee(0, fact.event.fee_reversed_minor)]


def refund_failed(fact: Fact) -> list[Line]:
    """A refund that never reached the payer: the money is held again and owed
    back (the reverse of its ``RefundRecorded``; no fee moves)."""
    return [Line(REFUNDS_PAID, debit=fact.event.amount_minor), *_money_split(fact)]


#: Event type → its posting rule.  Every type here must also change the
#: who-paid row (projections/who_paid.py) so that ``before``/``after`` differ.
POSTINGS: dict[type[Any], Callable[[Fact], list[Line]]] = {
    Registration.PaymentRecorded: payment_recorded,
    Registration.RefundRecorded: refund_recorded,
    Registration.Rejected: participant_rejected,
    Registration.Cancelled: registration_cancelled,
    Registration.DisputeFundsWithdrawn: funds_withdrawn,
    Registration.DisputeFundsReinstated: funds_reinstated,
    Registration.DisputeResolved: dispute_resolved,
    Registration.PaymentReversed: funds_withdrawn,
    Registration.RefundFailed: refund_failed,
}


def check_balanced(lines: Sequence[Line], where: str) -> None:
    debit = sum(line.debit for line in lines)
    credit = sum(line.credit for line in lines)
    if debit != credit:
        raise Unbalanced(f"entry {where}: debits {debit} != credits {credit}")


def _merge(lines: Sequence[Line]) -> list[Line]:
    """One line per account and side (a fee charged and reversed by one fact
    stays two lines: both happened)."""
    merged: dict[tuple[str, bool], int] = {}
    for line in lines:
        key = (line.account, line.debit > 0)
        merged[key] = merged.get(key, 0) + line.debit + line.credit
    return [Line(a, debit=v) if is_debit else Line(a, credit=v)
            for (a, is_debit), v in merged.items() if v]


@dataclass(slots=True)
class Entry:
    position: int
    event_id: UUID
    kind: str
    organizer_id: str
    currency: str
    registration_id: UUID
    paid_event_id: UUID
    occurred_at: datetime
    lines: list[Line]


def post(fact: Fact) -> Entry | None:
    """The entry ``fact`` posts (``None`` when it moves no money), balanced."""
    rule = POSTINGS.get(type(fact.event))
    if rule is None:
        return None
    lines = _merge(rule(fact))
    if not lines:
        return None
    e = fact.event
    check_balanced(lines, f"at position {fact.position}")
    return Entry(
        position=fact.position, event_id=UUID(event_id(e.originator_id, e.originator_version)),
        kind=PUBLIC_TYPES[type(e)][0] if type(e) in PUBLIC_TYPES else type(e).__name__,
        organizer_id=fact.row.organizer_id, currency=fact.row.currency, registration_id=e.originator_id,
        paid_event_id=fact.row.event_id, occurred_at=e.timestamp, lines=lines,
    )


# --- storage ----------------------------------------------------------------------------


@dataclass(slots=True)
class Account:
    account_id: int
    debit: int
    credit: int
    position: int


AccountKey = tuple[str, str, str]  # organizer, currency, account


class Journal:
    """A batch's entries, written with the batch: entries and lines by COPY,
    account totals by one upsert."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []

    def add(self, fact: Fact) -> None:
        entry = post(fact)
        if entry is not None:
            self.entries.append(entry)

    def save(self, conn: psycopg.Connection[Any], schema: str) -> None:
        if not self.entries:
            return
        keys = sorted({(e.organizer_id, e.currency, line.account) for e in self.entries for line in e.lines})
        accounts = _load_accounts(conn, schema, keys)
        next_id = None
        lines_out: list[tuple[Any, ...]] = []
        for entry in sorted(self.entries, key=lambda x: x.position):
            for n, line in enumerate(entry.lines, start=1):
                key = (entry.organizer_id, entry.currency, line.account)
                found = accounts.get(key)
                if found is None:
                    if next_id is None:
                        next_id = _max_account_id(conn, schema) + 1
                    found = accounts[key] = Account(next_id, 0, 0, entry.position)
                    next_id += 1
                found.debit += line.debit
                found.credit += line.credit
                found.position = entry.position
                lines_out.append((entry.position, n, found.account_id, entry.organizer_id, entry.currency,
                                  line.account, line.debit, line.credit, found.debit, found.credit))
        table = sql.Identifier
        with conn.cursor() as cursor:
            with cursor.copy(sql.SQL(
                "COPY {} (position, event_id, kind, organizer_id, currency, registration_id, paid_event_id,"
                " occurred_at) FROM STDIN (FORMAT BINARY)").format(table(schema, "journal_entries"))) as copy:
                copy.set_types(["int8", "uuid", "text", "text", "text", "uuid", "uuid", "timestamptz"])
                for e in self.entries:
                    copy.write_row((e.position, e.event_id, e.kind, e.organizer_id, e.currency,
                                    e.registration_id, e.paid_event_id, e.occurred_at))
            with cursor.copy(sql.SQL(
                "COPY {} (position, line_no, account_id, organizer_id, currency, account, debit_minor,"
                " credit_minor, debit_total, credit_total) FROM STDIN (FORMAT BINARY)").format(
                    table(schema, "journal_lines"))) as copy:
                copy.set_types(["int8", "int2", "int4", "text", "text", "text", "int8", "int8", "int8", "int8"])
                for values in lines_out:
                    copy.write_row(values)
        touched = [(k, a) for k, a in accounts.items()]
        conn.execute(
            sql.SQL(
                "INSERT INTO {} AS t (account_id, organizer_id, currency, account, debit_minor, credit_minor,"
                " position) SELECT * FROM unnest(%s::int4[], %s::text[], %s::text[], %s::text[], %s::int8[],"
                " %s::int8[], %s::int8[]) ON CONFLICT (account_id) DO UPDATE SET debit_minor ="
                " EXCLUDED.debit_minor, credit_minor = EXCLUDED.credit_minor, position = EXCLUDED.position"
            ).format(table(schema, "book_accounts")),
            [[a.account_id for _, a in touched], [k[0] for k, _ in touched], [k[1] for k, _ in touched],
             [k[2] for k, _ in touched], [a.debit for _, a in touched], [a.credit for _, a in touched],
             [a.position for _, a in touched]],
        )


def checkpoint(conn: psycopg.Connection[Any], schema: str, *, before: int, reached: int,
               every: int = CHECKPOINT_EVERY) -> bool:
    """After a batch moved the position from ``before`` to ``reached``: when it
    crossed a multiple of ``every``, keep every account's totals at ``reached``
    (exact: ``book_accounts`` holds the totals of every entry up to it)."""
    if reached // every <= before // every:
        return False
    write_checkpoint(conn, schema, reached)
    return True


def write_checkpoint(conn: psycopg.Connection[Any], schema: str, position: int) -> None:
    """Every account's current totals as the checkpoint at ``position`` (the
    generation's position: the caller holds its row lock).  Inserted in key
    order, so its primary key (which holds the totals: "as of" reads them from
    it) is filled page after page instead of split all over."""
    conn.execute(sql.SQL(
        "INSERT INTO {} (position, account_id, debit_total, credit_total)"
        " SELECT %s, account_id, debit_minor, credit_minor FROM {} ORDER BY account_id"
        " ON CONFLICT DO NOTHING").format(
            sql.Identifier(schema, "book_checkpoints"), sql.Identifier(schema, "book_accounts")), (position,))


def _load_accounts(conn: psycopg.Connection[Any], schema: str, keys: list[AccountKey]) -> dict[AccountKey, Account]:
    rows = conn.execute(
        sql.SQL(
            "SELECT a.organizer_id, a.currency, a.account, a.account_id, a.debit_minor, a.credit_minor, a.position"
            " FROM {} a JOIN unnest(%s::text[], %s::text[], %s::text[]) AS k(o, c, n)"
            " ON a.organizer_id = k.o AND a.currency = k.c AND a.account = k.n"
        ).format(sql.Identifier(schema, "book_accounts")),
        ([k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]),
    ).fetchall()
    return {(r[0], r[1], r[2]): Account(r[3], r[4], r[5], r[6]) for r in rows}


def _max_account_id(conn: psycopg.Connection[Any], schema: str) -> int:
    row = conn.execute(sql.SQL("SELECT coalesce(max(account_id), 0) FROM {}").format(
        sql.Identifier(schema, "book_accounts"))).fetchone()
    return int(row[0]) if row else 0
