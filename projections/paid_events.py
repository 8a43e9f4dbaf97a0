"""Owner, title, price and status of each paid event.

Why a view of its own: the participants endpoint must answer 404 for another
organizer's event (and for unknown ids) and show an event's header without
replaying the event aggregate, whose history grows with every seat sold.
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

from ledger.domain.paid_event import PaidEvent


@dataclass(slots=True)
class PaidEventRow:
    event_id: UUID
    organizer_id: str
    title: str
    currency: str
    price_minor: int
    status: str
    created_at: datetime
    updated_at: datetime


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(PaidEventRow))
_values = attrgetter(*COLUMNS)


def _edited(row: PaidEventRow, event: Any) -> None:
    row.title = event.title


def _cancelled(row: PaidEventRow, event: Any) -> None:
    row.status = "cancelled"


_CHANGES: dict[type[Any], Callable[[PaidEventRow, Any], None]] = {
    PaidEvent.DetailsEdited: _edited,
    PaidEvent.Cancelled: _cancelled,
}

EVENT_TYPES: tuple[type[Any], ...] = (PaidEvent.Created, *_CHANGES)


def apply(row: PaidEventRow | None, event: Any) -> PaidEventRow:
    if isinstance(event, PaidEvent.Created):
        if row is not None:
            return row
        return PaidEventRow(
            event_id=event.originator_id, organizer_id=str(event.organizer_id), title=event.title,
            currency=event.currency, price_minor=event.price_minor, status="scheduled",
            created_at=event.timestamp, updated_at=event.timestamp,
        )
    if row is None:
        raise LookupError(f"{type(event).__qualname__} for unknown paid event {event.originator_id}")
    _CHANGES[type(event)](row, event)
    row.updated_at = event.timestamp
    return row


def load(conn: psycopg.Connection[Any], table: sql.Identifier, ids: Iterable[UUID]) -> dict[UUID, PaidEventRow]:
    wanted = list(ids)
    if not wanted:
        return {}
    query = sql.SQL("SELECT {cols} FROM {table} WHERE event_id = ANY(%s)").format(
        cols=sql.SQL(", ").join(map(sql.Identifier, COLUMNS)), table=table
    )
    return {r[0]: PaidEventRow(*r) for r in conn.execute(query, (wanted,)).fetchall()}


def save(conn: psycopg.Connection[Any], table: sql.Identifier, rows: Sequence[PaidEventRow]) -> None:
    if not rows:
        return
    types = ("uuid", "text", "text", "text", "int8", "text", "timestamptz", "timestamptz")
    query = sql.SQL(
        "INSERT INTO {table} ({cols}) SELECT * FROM unnest({arrays})"
        " ON CONFLICT (event_id) DO UPDATE SET title = EXCLUDED.title, status = EXCLUDED.status,"
        " updated_at = EXCLUDED.updated_at"
    ).format(
        table=table,
        cols=sql.SQL(", ").join(map(sql.Identifier, COLUMNS)),
        arrays=sql.SQL(", ").join(sql.SQL("%b::" + t + "[]") for t in types),
    )
    columns = [list(c) for c in zip(*map(_values, rows), strict=True)]
    conn.execute(query, columns)
