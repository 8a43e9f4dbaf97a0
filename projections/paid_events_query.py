"""Reading the paid-events view: the events a scope may see, newest first, a
page at a time (the organizer's events list).

Paging is by keyset ``(created_at, event_id)`` descending, so a page stays
stable while new events are created; the cursor carries the last row's
creation time in microseconds and its id.  The view holds owner, title, price
and status only — schedule and seats come from the event itself.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from psycopg.rows import class_row

from ledger.scope import Scope
from projections.paging import InvalidCursor, decode_cursor, encode_cursor, is_ascii_number
from projections.paid_events import COLUMNS, PaidEventRow

if TYPE_CHECKING:
    from ledger.database import Database

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
_SELECT = "SELECT " + ", ".join(COLUMNS) + " FROM projections.paid_events"


def _cursor(row: PaidEventRow) -> str:
    return encode_cursor((row.created_at - _EPOCH) // _MICRO, str(row.event_id))


def _decode(after: str | None) -> tuple[datetime, str] | None:
    found = decode_cursor(after, parts=2)
    if found is None:
        return None
    micros, event_id = found
    if not is_ascii_number(micros, 18):
        raise InvalidCursor()
    try:
        return _EPOCH + int(micros) * _MICRO, str(UUID(event_id))
    except (OverflowError, ValueError):  # beyond datetime.max, or not an id we handed out
        raise InvalidCursor() from None


def newest_first(
    db: Database, scope: Scope, *, after: str | None, limit: int
) -> tuple[list[PaidEventRow], str | None]:
    """At most ``limit`` events of ``scope`` (every organizer's for finance)
    after cursor ``after``, newest first, and the next cursor (None on the last
    page).  A malformed cursor raises ``InvalidCursor``."""
    conditions: list[str] = []
    params: list[Any] = []
    if scope.organizer_id is not None:
        conditions.append("organizer_id = %s")
        params.append(scope.organizer_id)
    position = _decode(after)
    if position is not None:
        conditions.append("(created_at, event_id) < (%s, %s::uuid)")
        params.extend(position)
    where = (" WHERE " + " AND ".join(conditions)) if conditions else ""
    params.append(limit + 1)
    with db.transaction() as conn, conn.cursor(row_factory=class_row(PaidEventRow)) as cursor:
        found = cursor.execute(
            _SELECT + where + " ORDER BY created_at DESC, event_id DESC LIMIT %s",
            params,
        ).fetchall()
    rows = found[:limit]
    following = _cursor(rows[-1]) if len(found) > limit and rows else None
    return rows, following
