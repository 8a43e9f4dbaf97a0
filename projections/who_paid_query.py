"""Reading the "who paid" view (R14): one event's registrations, a page at a
time (JSON) or all of them (CSV).

Tenancy: an organizer only ever sees its own events; another organizer's event
id is answered exactly like an unknown id (404), so ids cannot be probed.
Finance (scope without organizer) sees every event.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from ledger.errors import NotFound, ValidationFailed
from ledger.money import Money, minor_digits
from ledger.scope import Scope
from projections.as_of import snapshot
from projections.paging import Page, decode_int_cursor, encode_cursor, parse_limit

if TYPE_CHECKING:
    from ledger.container import Ledger

#: Registration statuses (API.md), the values ``?status=`` accepts.
STATUSES = ("awaiting_payment", "paid", "confirmed", "rejected", "cancelled", "refund_due", "refunded",
            "dispute_lost")

TIMESTAMP_FIELDS = (
    "registered_at", "checkout_started_at", "paid_at", "confirmed_at", "rejected_at", "cancelled_at",
    "refunded_at", "payment_failed_at", "updated_at",
)
#: Selected columns, each read by its name (ids as text: no UUID objects to build and print).
_COLUMNS = (
    "registration_id::text AS registration_id", "seq", "event_id::text AS event_id", "organizer_id", "name",
    "email", "erased", "status", "currency", "price_minor", "paid_minor", "refunded_minor", "refund_due_minor",
    "fee_minor - fee_reversed_minor AS net_fee_minor", "provider", "provider_reference", "confirmed",
    "closed_reason", "close_note", "payment_failures", "last_failure_reason", "resends", *TIMESTAMP_FIELDS,
    "disputed", "withdrawn_minor", "reinstated_minor",
)
_SELECT = "SELECT " + ", ".join(_COLUMNS) + " FROM projections.who_paid"
#: Copied from the row as they are, in the order of API.md's participants item.
_PLAIN_FIELDS = (
    "provider", "provider_reference", "confirmed", "closed_reason", "close_note", "payment_failures",
    "last_failure_reason", "resends", "disputed",
)
#: Money columns of a row and the item field each becomes.
_MONEY_FIELDS = (
    ("price", "price_minor"), ("paid", "paid_minor"), ("refunded", "refunded_minor"),
    ("refund_due", "refund_due_minor"), ("fee", "net_fee_minor"),
    ("withdrawn", "withdrawn_minor"), ("reinstated", "reinstated_minor"),
)


def _amount(minor: int, currency: str) -> str:
    if minor >= 0 and minor_digits(currency) == 2:  # the common case, without a Money object
        return f"{minor // 100}.{minor % 100:02d}"
    return Money(minor, currency).amount


def as_item(r: Mapping[str, Any]) -> dict[str, Any]:
    """A selected row as API.md's participants item (money as objects)."""
    currency = r["currency"]
    item = {name: r[name]
            for name in ("registration_id", "event_id", "organizer_id", "name", "email", "erased", "status")}
    for name, column in _MONEY_FIELDS:
        item[name] = {"amount": _amount(r[column], currency), "currency": currency}
    item.update({name: r[name] for name in _PLAIN_FIELDS})
    for name in TIMESTAMP_FIELDS:
        item[name] = r[name].isoformat() if r[name] is not None else None
    return item


def parse_statuses(value: str | None) -> list[str]:
    """``?status=paid`` or a comma-separated list (``paid,confirmed``)."""
    if value is None or value == "":
        return []
    wanted = [s.strip() for s in value.split(",")]
    unknown = [s for s in wanted if s not in STATUSES]
    if unknown:
        raise ValidationFailed({"status": [f"{unknown[0]!r} is not one of {', '.join(STATUSES)}"]})
    return wanted


def _check_event(conn: psycopg.Connection[Any], ledger: Ledger, event_id: str, scope: Scope) -> tuple[UUID, str]:
    """The event's id and currency if ``scope`` may see it; ``NotFound``
    otherwise.  The view answers first; an event too new to be in it yet is
    checked in the event store, so a just-created event lists (empty) instead of 404."""
    try:
        uid = UUID(str(event_id))
    except ValueError:
        raise NotFound(f"no event {event_id}") from None
    row = conn.execute("SELECT organizer_id, currency FROM projections.paid_events WHERE event_id = %s",
                       (uid,)).fetchone()
    if row is None:
        return uid, ledger.service.event(str(uid), scope).currency  # raises NotFound (unknown or foreign)
    if not scope.allows(row[0]):
        raise NotFound(f"no event {event_id}")  # another tenant's id: 404, not 403
    return uid, str(row[1])


check_event_in = _check_event  #: for the "as of" reads (projections/who_paid_as_of.py)


def check_event(ledger: Ledger, event_id: str, scope: Scope) -> tuple[UUID, str]:
    with ledger.db.transaction() as conn:
        return _check_event(conn, ledger, event_id, scope)


@dataclass(frozen=True)
class EventMoney:
    """An event's money (R17, R18), summed over its registrations in the view:
    ``gross - refunded - refund_due`` is the money paying for tickets held."""

    currency: str
    gross_minor: int
    refunded_minor: int
    refund_due_minor: int
    fee_minor: int
    withdrawn_minor: int = 0

    @property
    def net_minor(self) -> int:
        """Gross minus refunds minus what the provider took back (as in the fee
        report); ``refund_due`` of it is owed back."""
        return self.gross_minor - self.refunded_minor - self.withdrawn_minor

    @property
    def ticket_minor(self) -> int:
        return self.net_minor - self.refund_due_minor

    def as_dict(self) -> dict[str, dict[str, str]]:
        return {name: Money(getattr(self, f"{name}_minor"), self.currency).as_dict()
                for name in ("gross", "refunded", "refund_due", "fee", "net", "withdrawn")}


def event_money(ledger: Ledger, event_id: str, currency: str) -> EventMoney:
    """The figures of ``GET /v1/events/{id}`` ``money`` and of the event page, as
    of the view's position (the caller has already checked the scope)."""
    with ledger.db.transaction() as conn:
        row = conn.execute(
            "SELECT coalesce(sum(paid_minor), 0), coalesce(sum(refunded_minor), 0),"
            " coalesce(sum(refund_due_minor), 0), coalesce(sum(fee_minor - fee_reversed_minor), 0),"
            " coalesce(sum(withdrawn_minor), 0)"
            " FROM projections.who_paid WHERE event_id = %s", (UUID(str(event_id)),),
        ).fetchone()
    assert row is not None
    gross, refunded, due, fee, withdrawn = (int(v) for v in row)
    return EventMoney(currency, gross, refunded, due, fee, withdrawn)


def _rows(
    conn: psycopg.Connection[Any], uid: UUID, statuses: list[str], after: int | None, limit: int
) -> list[dict[str, Any]]:
    conditions = ["event_id = %s"]
    params: list[Any] = [uid]
    if statuses:
        conditions.append("status = ANY(%s)")
        params.append(statuses)
    if after is not None:
        conditions.append("seq > %s")
        params.append(after)
    params.append(limit)
    query = _SELECT + " WHERE " + " AND ".join(conditions) + " ORDER BY seq LIMIT %s"
    with conn.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(sql.SQL(query), params).fetchall()  # type: ignore[arg-type]


def page(
    ledger: Ledger, event_id: str, *, scope: Scope, status: str | None = None,
    after: str | None = None, limit: str | int | None = None,
) -> Page:
    """One page of an event's participants in registration order.  ``next`` is
    the cursor for ``?after=`` or ``None`` on the last page."""
    size = parse_limit(limit)
    position = decode_int_cursor(after)
    statuses = parse_statuses(status)
    with ledger.db.transaction() as conn:
        view_position = snapshot(conn)
        uid, _ = _check_event(conn, ledger, event_id, scope)
        rows = _rows(conn, uid, statuses, position, size + 1)
    more = len(rows) > size
    rows = rows[:size]
    following = encode_cursor(rows[-1]["seq"]) if more and rows else None
    return Page(items=[as_item(r) for r in rows], next=following, position=view_position)


CSV_COLUMNS = (
    "registration_id", "name", "email", "status", "currency", "price", "paid", "refunded", "refund_due",
    "fee", "withdrawn", "reinstated", "provider", "provider_reference", "confirmed", "closed_reason",
    *TIMESTAMP_FIELDS, "erased",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(text: str | None) -> str:
    """Participant-typed text is defused against spreadsheet formula injection
    (OWASP: prefix a quote), since organizers open these files in Excel."""
    if not text:
        return ""
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_lines(
    ledger: Ledger, event_id: str, *, scope: Scope, status: str | None = None, chunk: int = 2000
) -> Iterator[str]:
    """Every participant of the event as RFC 4180 CSV, streamed in chunks, and a
    last line with the totals (R17): ``registration_id`` is ``total``, ``name``
    says how many participants it sums, and the money columns are the sums of
    the lines above.  The tenant check and input validation happen before the
    first line is yielded (so an error is still a proper 404/422, not a
    truncated file)."""
    statuses = parse_statuses(status)
    uid, currency = check_event(ledger, event_id, scope)

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(CSV_COLUMNS)
        after: int | None = None
        sums = [0] * len(_MONEY_FIELDS)
        count = 0
        while True:
            with ledger.db.transaction() as conn:
                rows = _rows(conn, uid, statuses, after, chunk)
            for r in rows:
                count += 1
                for n, (_, column) in enumerate(_MONEY_FIELDS):
                    sums[n] += r[column]
                writer.writerow([
                    r["registration_id"], _cell(r["name"]), _cell(r["email"]), r["status"], currency,
                    *(_amount(r[column], currency) for _, column in _MONEY_FIELDS),
                    r["provider"], _cell(r["provider_reference"]), "true" if r["confirmed"] else "false",
                    r["closed_reason"] or "",
                    *((r[name].isoformat() if r[name] is not None else "") for name in TIMESTAMP_FIELDS),
                    "true" if r["erased"] else "false",  # R24: name and e-mail are empty then
                ])
            if len(rows) < chunk:
                break
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            after = rows[-1]["seq"]
        totals = [_amount(v, currency) for v in sums]
        totals[0] = ""  # a sum of prices means nothing
        writer.writerow(["total", f"{count} participants", "", "", currency, *totals,
                         *([""] * (len(CSV_COLUMNS) - 5 - len(totals)))])
        yield buffer.getvalue()

    return lines()


def registrations_by_email(ledger: Ledger, email: str, *, scope: Scope, limit: int) -> list[str]:
    """The registrations (of the organizer's events; every one for an
    unscoped caller) made with ``email``, case-insensitively, oldest first:
    whom an erasure by e-mail address covers (R24).  At most ``limit``.

    The who-paid view follows the log a moment behind, so the address claims
    (``ledger.registration_emails``, written with each registration) are read
    too: a registration made just now is found as well."""
    conditions, params = ["lower(email) = lower(%s)"], [email.strip()]
    if scope.organizer_id is not None:
        conditions.append("organizer_id = %s")
        params.append(scope.organizer_id)
    query = ("SELECT registration_id::text FROM projections.who_paid WHERE " + " AND ".join(conditions)
             + " ORDER BY seq LIMIT %s")
    with ledger.db.transaction() as conn:
        found = [rid for (rid,) in conn.execute(query, (*params, limit)).fetchall()]
    emails = ledger.service.emails
    for rid in emails.registrations_with(email) if emails is not None else ():
        if len(found) >= limit:
            break
        if rid not in found and _visible(ledger, rid, scope):
            found.append(rid)
    return found


def _visible(ledger: Ledger, registration_id: str, scope: Scope) -> bool:
    try:
        ledger.service.registration(registration_id, scope)
    except NotFound:
        return False  # another organizer's participant
    return True
