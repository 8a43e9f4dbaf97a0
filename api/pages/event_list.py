"""The organizer's events list, and "read your own writes" for the pages.

The paid-events view (owner, title, price, status) is paged by
``projections.paid_events_query`` (newest first, keyset cursor); it holds
neither the schedule nor the seats, so this module takes start time, time zone
and tickets sold / left from each listed event's aggregate — the same numbers
``GET /v1/events/{id}`` shows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ledger import event_log
from ledger.errors import LedgerError
from ledger.money import Money
from ledger.scope import Scope
from projections import paid_events_query, runner
from projections.paging import parse_limit

if TYPE_CHECKING:
    from ledger.container import Ledger


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
    tickets_held: int
    tickets_left: int
    capacity: int


def events_page(
    ledger: Ledger, scope: Scope, *, after: str | None = None, limit: int | str | None = 25
) -> tuple[list[EventLine], str | None]:
    """One page of events ``scope`` may see, newest first, and the next cursor."""
    size = parse_limit(limit, default=25, maximum=100)
    rows, following = paid_events_query.newest_first(ledger.db, scope, after=after, limit=size)
    now = ledger.service.clock()
    lines = []
    for row in rows:
        try:
            paid_event = ledger.service.event(str(row.event_id), scope)
            summary = paid_event.summary(ledger.service.capacity_of(paid_event), now)
        except LedgerError:
            continue  # unreadable for this scope: never shown
        lines.append(EventLine(
            id=str(row.event_id), organizer_id=row.organizer_id, title=paid_event.title or row.title,
            status=paid_event.status or row.status, price=Money(row.price_minor, row.currency),
            starts_at=paid_event.starts_at, timezone=paid_event.timezone,
            sessions=len(paid_event.sessions), permanent=paid_event.permanent,
            tickets_sold=summary["tickets_sold"], tickets_held=summary["tickets_held"],
            tickets_left=summary["tickets_left"],
            capacity=summary["capacity"],
        ))
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
