"""``?as_of=``: which point of the log an answer reflects.

``position:<n>`` or an RFC 3339 time (with its offset).  A time means the
position of the latest money fact stamped at or before it (the books, the fee
report and the money of who paid only change at money facts), so the same
question gives the same answer now or after a rebuild from zero.  A position
past what the views have applied is answered at the views' position; the
answer's ``as_of.position`` says which.

Every read runs in one REPEATABLE READ snapshot together with the views'
position (:func:`snapshot`), so ``Ledger-Position`` is exactly the position
the figures reflect.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from ledger.errors import ValidationFailed

_POSITION = re.compile(r"position:([0-9]{1,18})")
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?([Zz]|[+-]\d{2}:\d{2})")
#: The same, for the OpenAPI document.
AS_OF_PATTERN = (r"^(position:[0-9]{1,18}|[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}"
                 r"(:[0-9]{2}(\.[0-9]{1,9})?)?([Zz]|[+-][0-9]{2}:[0-9]{2}))$")


@dataclass(frozen=True)
class AsOfRequest:
    position: int | None = None
    time: datetime | None = None


def parse_as_of(value: str | None) -> AsOfRequest | None:
    """``position:<n>`` or an RFC 3339 time with its offset; else a 422."""
    if value is None:
        return None
    found = _POSITION.fullmatch(value)
    if found:
        return AsOfRequest(position=int(found.group(1)))
    if _TIME.fullmatch(value):
        try:
            stamp = datetime.fromisoformat(value.replace("z", "Z"))
        except ValueError:
            stamp = None
        if stamp is not None and stamp.tzinfo is not None:
            return AsOfRequest(time=stamp)
    raise ValidationFailed({"as_of": ["must be position:<n> or an RFC 3339 time with its offset"]})


@dataclass(frozen=True)
class AsOf:
    """The point an answer reflects: a log position, and the time of the last
    money fact up to it (``None`` before the first)."""

    position: int
    time: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {"position": self.position, "time": self.time.isoformat() if self.time else None}


def snapshot(conn: psycopg.Connection[Any]) -> int:
    """Start a consistent read and answer the view's position."""
    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    row = conn.execute("SELECT position FROM projections.generations WHERE state = 'active'").fetchone()
    return int(row[0]) if row else 0


def resolve(conn: psycopg.Connection[Any], view_position: int, wanted: AsOfRequest | None) -> AsOf:
    """The position (and time) ``wanted`` names, within what the view has applied."""
    if wanted is not None and wanted.time is not None:
        # every money fact stamped at or before the time, nothing after it
        found = conn.execute(
            "SELECT coalesce(max(position), 0) FROM projections.journal_entries WHERE occurred_at <= %s"
            " AND position <= %s", (wanted.time, view_position)).fetchone()
        return AsOf(int(found[0]) if found else 0, wanted.time)
    position = view_position if wanted is None or wanted.position is None else min(wanted.position, view_position)
    row = conn.execute(
        "SELECT occurred_at FROM projections.journal_entries WHERE position <= %s ORDER BY position DESC LIMIT 1",
        (position,)).fetchone()
    return AsOf(position, row[0] if row else None)


