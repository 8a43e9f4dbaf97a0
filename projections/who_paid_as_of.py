"""Who paid (R14) as of a point of the log: ``GET /v1/events/{id}/participants?as_of=``.

Why a replay, and why it is cheap enough: the who-paid view keeps only the
present.  The past of one event's registrations is their own events up to the
position, read by primary key from the event store and folded with the view's
own ``who_paid.apply`` -- the same code that built the view, so the answer is
what the view said at that position (and what a rebuild from the first n
events says).  It touches one event's registrations, never the whole log.
"""

from __future__ import annotations

from operator import attrgetter
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.utils import get_topic

from ledger.event_log import notifications_of
from ledger.scope import Scope
from projections import who_paid
from projections.as_of import AsOf, parse_as_of, resolve, snapshot
from projections.decoding import EventDecoder
from projections.paging import Page, decode_int_cursor, encode_cursor, parse_limit
from projections.who_paid_query import as_item, check_event_in, parse_statuses

if TYPE_CHECKING:
    from ledger.container import Ledger

#: The row's derived fields (the aggregate's own properties, see projections/who_paid.py).
_derived = attrgetter("status", "refund_due_minor")
_TOPICS = {get_topic(cls): cls for cls in who_paid.EVENT_TYPES}


def rows_as_of(
    ledger: Ledger, event_uid: UUID, position: int, registration_ids: list[UUID]
) -> list[who_paid.WhoPaidRow]:
    """The who-paid rows of these registrations as they stood at ``position``."""
    decoder = EventDecoder(ledger.store.mapper)
    rows: dict[UUID, who_paid.WhoPaidRow] = {}
    for n in notifications_of(ledger.store, registration_ids, up_to=position, topics=sorted(_TOPICS)):
        event = decoder.decode(n, _TOPICS[n.topic])
        oid = event.originator_id
        rows[oid] = who_paid.apply(rows.get(oid), event, n.id)
    return sorted((r for r in rows.values() if r.event_id == event_uid), key=lambda r: r.seq)


def _as_selected(row: who_paid.WhoPaidRow) -> dict[str, Any]:
    """A row in the shape ``who_paid_query`` selects (for ``as_item``)."""
    found = {name: getattr(row, name) for name in who_paid.STORED_FIELDS}
    status, refund_due = _derived(row)
    found.update(registration_id=str(row.registration_id), event_id=str(row.event_id), status=status,
                 refund_due_minor=refund_due, net_fee_minor=row.fee_minor - row.fee_reversed_minor)
    return found


def page(
    ledger: Ledger, event_id: str, *, scope: Scope, as_of: str, status: str | None = None,
    after: str | None = None, limit: str | int | None = None,
) -> tuple[Page, AsOf, int]:
    """One page of the event's participants as of ``as_of``; the point it
    reflects and the views' position."""
    wanted = parse_as_of(as_of)
    size = parse_limit(limit)
    cursor = decode_int_cursor(after)
    statuses = parse_statuses(status)
    with ledger.db.transaction() as conn:
        view_position = snapshot(conn)
        uid, _ = check_event_in(conn, ledger, event_id, scope)
        point = resolve(conn, view_position, wanted)
        ids = [r[0] for r in conn.execute(
            "SELECT registration_id FROM projections.who_paid WHERE event_id = %s AND seq <= %s",
            (uid, point.position)).fetchall()]
    rows = [r for r in rows_as_of(ledger, uid, point.position, ids)
            if (not statuses or _derived(r)[0] in statuses) and (cursor is None or r.seq > cursor)]
    chosen = rows[:size]
    following = encode_cursor(chosen[-1].seq) if len(rows) > size and chosen else None
    return Page(items=[as_item(_as_selected(r)) for r in chosen], next=following), point, view_position
