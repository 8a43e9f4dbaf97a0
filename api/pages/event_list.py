"""The organizer's events list, and "read your own writes" for the pages.

Workaround, kept here on purpose: ``projections/paid_events.py`` maintains the
``projections.paid_events`` view (owner, title, price, status) but has no query
function yet, and the view holds neither the schedule nor the seats.  So this
module pages through the view itself (newest first, keyset cursor) and takes
start time, time zone and tickets sold / left from each listed event's
aggregate — the same numbers ``GET /v1/events/{id}`` shows.  When projections
gains a list query, this module should call it instead.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ledger import event_log
from ledger.errors import LedgerError
from ledger.money import Money
from ledger.service import Scope
from projections import runner
from projections.paging import InvalidCursor, decode_cursor, encode_cursor, parse_limit

if TYPE_CHECKING:
    from entrypoints.bootstrap import Ledger

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


@dataclass(frozen=True)
class EventLine:
    id: str
    organizer_id: str
    title: str
    status: str
    price: Money
    starts_at: str
    timezone: str
    sessions: int
    permanent: bool
    tickets_sold: int
    tickets_left: int
    capacity: int


def _cursor(created_at: datetime, event_id: Any) -> str:
    return encode_cursor((created_at - _EPOCH) // _MICRO, str(event_id))


def _decode(after: str | None) -> tuple[datetime, str] | None:
    found = decode_cursor(after, parts=2)
    if found is None:
        return None
    micros, event_id = found
    if not micros.isdigit() or len(micros) > 18:
        raise InvalidCursor()
    return _EPOCH + int(micros) * _MICRO, event_id


def _rows(ledger: Ledger, scope: Scope, after: tuple[datetime, str] | None, limit: int) -> list[Any]:
    conditions: list[str] = []
    params: list[Any] = []
    if scope.organizer_id is not None:
        conditions.append("organizer_id = %s")
        params.append(scope.organizer_id)
    if after is not None:
        conditions.append("(created_at, event_id) < (%s, %s::uuid)")
        params.extend(after)
    where = (" WHERE " + " AND ".join(conditions)) if conditions else ""
    params.append(limit)
    with ledger.db.transaction() as conn:
        return conn.execute(
            "SELECT event_id, organizer_id, title, currency, price_minor, status, created_at "
            f"FROM projections.paid_events{where} ORDER BY created_at DESC, event_id DESC LIMIT %s",
            params,
        ).fetchall()


def events_page(
    ledger: Ledger, scope: Scope, *, after: str | None = None, limit: int | str | None = 25
) -> tuple[list[EventLine], str | None]:
    """One page of events ``scope`` may see, newest first, and the next cursor."""
    size = parse_limit(limit, default=25, maximum=100)
    rows = _rows(ledger, scope, _decode(after), size + 1)
    more = len(rows) > size
    rows = rows[:size]
    now = ledger.service.clock()
    lines = []
    for event_id, organizer_id, title, currency, price_minor, status, _created in rows:
        try:
            paid_event = ledger.service.event(str(event_id), scope)
            summary = paid_event.summary(ledger.service.capacity_of(paid_event), now)
        except LedgerError:
            continue  # unreadable for this scope: never shown
        lines.append(EventLine(
            id=str(event_id), organizer_id=organizer_id, title=paid_event.title or title,
            status=paid_event.status or status, price=Money(price_minor, currency),
            starts_at=paid_event.starts_at, timezone=paid_event.timezone,
            sessions=len(paid_event.sessions), permanent=paid_event.permanent,
            tickets_sold=summary["tickets_sold"], tickets_left=summary["tickets_left"],
            capacity=summary["capacity"],
        ))
    following = _cursor(rows[-1][6], rows[-1][0]) if more and rows else None
    return lines, following


def wait_for_views(ledger: Ledger, *, timeout: float = 2.0) -> bool:
    """After a command, wait (bounded) until the projection runner has applied
    everything stored so far, so the page shown next already reflects the
    change.  False when the runner is not keeping up (the page then says the
    lists may lag); the command itself is done either way."""
    target = event_log.head(ledger.store)
    deadline = time.monotonic() + timeout
    while True:
        if runner.status(ledger).position >= target:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.03)
