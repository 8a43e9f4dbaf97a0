"""The "who paid" view (R14, R15): one row per registration with its derived
status and the money that moved for it.

The status and the refund still due are *not* re-implemented here: the row
borrows ``Registration``'s own properties (``status``, ``refund_due_minor``,
``is_open``), which read the same attribute names, and splits money between
the ticket and what is owed back with the aggregate's own rules
(``ledger.owed_back``).  One definition of the state machine and of the money
split, so the view can never disagree with the aggregate (docs/projections.md).

This module only says how an event changes a row; ``projections.batch`` loads
the rows a batch touches, applies the events in memory and writes them back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from operator import attrgetter
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from ledger import owed_back
from ledger.domain.registration import Registration


@dataclass(slots=True)
class WhoPaidRow:
    """A registration as the view keeps it (columns of ``who_paid`` minus the
    two derived ones, which are computed when the row is written)."""

    registration_id: UUID
    seq: int
    event_id: UUID
    organizer_id: str
    name: str | None  # None once erased (R24)
    email: str | None
    erased: bool
    currency: str
    price_minor: int
    provider: str
    provider_reference: str | None
    paid_minor: int
    refunded_minor: int
    ticket_minor: int
    fee_minor: int
    fee_reversed_minor: int
    confirmed: bool
    closed_reason: str | None
    close_note: str | None
    payment_failures: int
    last_failure_reason: str | None
    resends: int
    registered_at: datetime
    checkout_started_at: datetime | None
    paid_at: datetime | None
    confirmed_at: datetime | None
    rejected_at: datetime | None
    cancelled_at: datetime | None
    refunded_at: datetime | None
    payment_failed_at: datetime | None
    updated_at: datetime
    version: int
    #: Issue 18: a dispute open or lost; money the provider took back net of
    #: what it reinstated (as ``Registration.withdrawn_minor``); reinstated.
    disputed: bool = False
    withdrawn_minor: int = 0
    reinstated_minor: int = 0

    # The aggregate's own derivations (see module docstring).
    is_open = Registration.is_open
    refund_due_minor = Registration.refund_due_minor
    status = Registration.status


STORED_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(WhoPaidRow))
DERIVED_FIELDS = ("status", "refund_due_minor")
#: A row's values in write order (``dataclasses.astuple`` deep-copies: 20x slower).
_values = attrgetter(*STORED_FIELDS, *DERIVED_FIELDS)

#: PostgreSQL array types for the unnest() upsert, in STORED_FIELDS order.
_TYPES = {
    "registration_id": "uuid", "seq": "int8", "event_id": "uuid", "price_minor": "int8",
    "paid_minor": "int8", "refunded_minor": "int8", "ticket_minor": "int8", "fee_minor": "int8",
    "fee_reversed_minor": "int8", "confirmed": "bool", "payment_failures": "int4",
    "resends": "int4", "version": "int4", "refund_due_minor": "int8", "erased": "bool",
    "disputed": "bool", "withdrawn_minor": "int8", "reinstated_minor": "int8",
}
for _name in STORED_FIELDS:
    if _name.endswith("_at"):
        _TYPES[_name] = "timestamptz"


def _pg_type(name: str) -> str:
    return _TYPES.get(name, "text")


# --- how each registration event changes a row ---------------------------------


def _registered(row: WhoPaidRow | None, event: Any, position: int) -> WhoPaidRow:
    return WhoPaidRow(
        registration_id=event.originator_id, seq=position, event_id=UUID(str(event.event_id)),
        organizer_id=str(event.organizer_id), name=event.name, email=event.email,
        erased=bool(event.__dict__.get("erased")) or event.name is None,
        currency=event.currency, price_minor=event.price_minor, provider=event.provider,
        provider_reference=None, paid_minor=0, refunded_minor=0, ticket_minor=0, fee_minor=0,
        fee_reversed_minor=0, confirmed=False, closed_reason=None, close_note=None,
        payment_failures=0, last_failure_reason=None, resends=0,
        registered_at=event.timestamp, checkout_started_at=None, paid_at=None,
        confirmed_at=None, rejected_at=None, cancelled_at=None, refunded_at=None,
        payment_failed_at=None, updated_at=event.timestamp, version=event.originator_version,
    )


def _checkout_started(row: WhoPaidRow, event: Any) -> None:
    row.checkout_started_at = event.timestamp
    if row.paid_minor == 0:  # a payment's own reference is the better one to show
        row.provider = event.provider
        row.provider_reference = event.reference


def _payment_recorded(row: WhoPaidRow, event: Any) -> None:
    # Mirrors Registration._payment_recorded: the split is decided on the row
    # before the money is added (a payment that found no seat closes it, R9).
    after = owed_back.after_payment(row, event.amount_minor, seat_granted=event.seat_granted)
    row.paid_minor += event.amount_minor
    row.fee_minor += event.fee_minor
    row.ticket_minor, row.closed_reason = after.ticket_minor, after.closed_reason
    row.provider = event.provider
    row.provider_reference = event.reference
    row.paid_at = event.timestamp


def _payment_failed(row: WhoPaidRow, event: Any) -> None:
    row.payment_failures += 1
    row.last_failure_reason = event.reason
    row.payment_failed_at = event.timestamp


def _confirmed(row: WhoPaidRow, event: Any) -> None:
    row.confirmed = True
    row.confirmed_at = event.timestamp


def _close(row: WhoPaidRow, event: Any, reason: str) -> None:
    # Mirrors Registration._close: no ticket money is left, its fee goes back (R18).
    row.closed_reason = reason
    row.close_note = event.reason
    row.ticket_minor = 0
    row.fee_reversed_minor += event.fee_reversed_minor


def _rejected(row: WhoPaidRow, event: Any) -> None:
    _close(row, event, "rejected")
    row.rejected_at = event.timestamp


def _cancelled(row: WhoPaidRow, event: Any) -> None:
    _close(row, event, "event_cancelled")
    row.cancelled_at = event.timestamp


def _resend_requested(row: WhoPaidRow, event: Any) -> None:
    row.resends += 1


def _refund_recorded(row: WhoPaidRow, event: Any) -> None:
    # Mirrors Registration._refund_recorded: owed back first, then the ticket (R17, R19).
    after = owed_back.after_refund(row, event.amount_minor, ends_access=event.ends_access)
    row.refunded_minor += event.amount_minor
    row.fee_reversed_minor += event.fee_reversed_minor
    row.ticket_minor, row.closed_reason = after.ticket_minor, after.closed_reason
    row.refunded_at = event.timestamp


def _personal_data_erased(row: WhoPaidRow, event: Any) -> None:
    # R24: the participant reads as erased; money and status stay.
    row.name = row.email = None
    row.erased = True


def _disputed(row: WhoPaidRow, event: Any) -> None:
    row.disputed = True


def _funds_withdrawn(row: WhoPaidRow, event: Any) -> None:
    # Mirrors Registration._funds_withdrawn (ledger.owed_back.after_withdrawal).
    after = owed_back.after_withdrawal(row, event.amount_minor)
    row.disputed = event.disputed  # the aggregate's marker after the fact
    row.withdrawn_minor += event.amount_minor
    row.fee_reversed_minor += event.fee_reversed_minor
    row.ticket_minor, row.closed_reason = after.ticket_minor, after.closed_reason


def _funds_reinstated(row: WhoPaidRow, event: Any) -> None:
    # Mirrors Registration._funds_reinstated: the split is decided with the
    # money still counted as withdrawn, then it comes back.
    after = owed_back.reinstated_split(row, event.amount_minor, event.ticket_minor)
    row.withdrawn_minor -= event.amount_minor
    row.reinstated_minor += event.amount_minor
    row.fee_minor += event.fee_minor
    row.ticket_minor, row.closed_reason = after.ticket_minor, after.closed_reason


def _dispute_resolved(row: WhoPaidRow, event: Any) -> None:
    row.disputed = event.disputed  # another dispute may still be open or lost
    if event.outcome == "lost" and row.closed_reason is None:
        row.closed_reason = "dispute_lost"
        row.close_note = "the payer won a dispute with the payment provider"
        row.ticket_minor = 0
        row.fee_reversed_minor += event.fee_reversed_minor


def _payment_reversed(row: WhoPaidRow, event: Any) -> None:
    row.disputed = True
    row.withdrawn_minor += event.amount_minor
    row.fee_reversed_minor += event.fee_reversed_minor
    if row.closed_reason is None:
        row.closed_reason = "reversed"
        row.close_note = "the payment provider reversed the payment"
    row.ticket_minor = 0


def _refund_failed(row: WhoPaidRow, event: Any) -> None:
    row.refunded_minor -= event.amount_minor  # the money never left: owed back again


_CHANGES: dict[type[Any], Callable[[WhoPaidRow, Any], None]] = {
    Registration.PersonalDataErased: _personal_data_erased,
    Registration.PaymentDisputed: _disputed,
    Registration.DisputeFundsWithdrawn: _funds_withdrawn,
    Registration.DisputeFundsReinstated: _funds_reinstated,
    Registration.DisputeResolved: _dispute_resolved,
    Registration.PaymentReversed: _payment_reversed,
    Registration.RefundFailed: _refund_failed,
    Registration.CheckoutStarted: _checkout_started,
    Registration.PaymentRecorded: _payment_recorded,
    Registration.PaymentFailed: _payment_failed,
    Registration.Confirmed: _confirmed,
    Registration.Rejected: _rejected,
    Registration.Cancelled: _cancelled,
    Registration.ConfirmationResendRequested: _resend_requested,
    Registration.RefundRecorded: _refund_recorded,
}

#: Every registration event class the view reacts to.
EVENT_TYPES: tuple[type[Any], ...] = (Registration.Registered, *_CHANGES)


def apply(row: WhoPaidRow | None, event: Any, position: int) -> WhoPaidRow:
    """The row after ``event`` (at global ``position``).  Events at or below the
    row's version are ignored: a second line of defence behind the tracking
    position, never the thing exactly-once relies on."""
    if isinstance(event, Registration.Registered):
        return row if row is not None else _registered(None, event, position)
    if row is None:
        raise LookupError(
            f"{type(event).__qualname__} at position {position} for unknown registration "
            f"{event.originator_id}: the view is missing its ParticipantRegistered"
        )
    if event.originator_version <= row.version:
        return row
    _CHANGES[type(event)](row, event)
    row.version = event.originator_version
    row.updated_at = event.timestamp
    return row


# --- storage ---------------------------------------------------------------------


def load(conn: psycopg.Connection[Any], table: sql.Identifier, ids: Iterable[UUID]) -> dict[UUID, WhoPaidRow]:
    """The stored rows of these registrations (missing ids are simply absent)."""
    wanted = list(ids)
    if not wanted:
        return {}
    query = sql.SQL("SELECT {cols} FROM {table} WHERE registration_id = ANY(%s)").format(
        cols=sql.SQL(", ").join(map(sql.Identifier, STORED_FIELDS)), table=table
    )
    rows = conn.execute(query, (wanted,)).fetchall()
    return {r[0]: WhoPaidRow(*r) for r in rows}


_WRITE_COLUMNS = (*STORED_FIELDS, *DERIVED_FIELDS)


def _upsert_statement(table: sql.Identifier) -> sql.Composed:
    return sql.SQL(
        "INSERT INTO {table} ({cols}) SELECT * FROM unnest({arrays})"
        " ON CONFLICT (registration_id) DO UPDATE SET {updates}"
    ).format(
        table=table,
        cols=sql.SQL(", ").join(map(sql.Identifier, _WRITE_COLUMNS)),
        arrays=sql.SQL(", ").join(sql.SQL("%b::" + _pg_type(c) + "[]") for c in _WRITE_COLUMNS),
        updates=sql.SQL(", ").join(
            sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c))
            for c in _WRITE_COLUMNS if c not in ("registration_id", "seq")
        ),
    )


def save(
    conn: psycopg.Connection[Any], table: sql.Identifier, rows: Sequence[WhoPaidRow],
    *, stored: set[UUID],
) -> None:
    """Write every changed row: rows new in this batch by binary COPY (the bulk
    of a catch-up), rows already ``stored`` by one binary ``unnest`` upsert.  A
    "new" row that somehow exists makes COPY fail loudly instead of doubling."""
    fresh = [r for r in rows if r.registration_id not in stored]
    changed = [r for r in rows if r.registration_id in stored]
    if fresh:
        copy_sql = sql.SQL("COPY {table} ({cols}) FROM STDIN (FORMAT BINARY)").format(
            table=table, cols=sql.SQL(", ").join(map(sql.Identifier, _WRITE_COLUMNS))
        )
        with conn.cursor() as cursor, cursor.copy(copy_sql) as copy:
            copy.set_types([_pg_type(c) for c in _WRITE_COLUMNS])
            for values in map(_values, fresh):
                copy.write_row(values)
    if changed:
        columns = [list(col) for col in zip(*map(_values, changed), strict=True)]
        conn.execute(_upsert_statement(table), columns)
