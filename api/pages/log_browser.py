"""The finance event-log browser: the immutable log, filtered and paged, and
one aggregate's full history.

Why read the event store and not a view: an auditor must see the stored facts
themselves (``projections.audit_log`` says the same).  ``audit_log.page`` pages
the whole log but cannot filter by organizer or aggregate yet, so this module
adds the filters on top of ``ledger.event_log`` (workaround until projections
has them):

* by type — in the database (``event_log.read(types=…)`` filters on topic);
* by aggregate — ``event_log.read_aggregate``: one indexed query for that
  aggregate, in global order (that is also a registration's full history);
* by organizer — checked per item while scanning forward, at most
  ``SCAN_BUDGET`` events per page so a rare organizer cannot make a page
  request scan the whole log; the page then offers to continue from where the
  scan stopped.

Data is shown through ``audit_log.redact`` (credential-named fields hidden),
exactly as the API serves it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from uuid import UUID

from api.pages.i18n import _
from ledger import event_log
from ledger.errors import ValidationFailed
from projections.audit_log import redact
from projections.paging import parse_limit, parse_position

if TYPE_CHECKING:
    from ledger.container import Ledger

SCAN_BUDGET = 5000
HISTORY_LIMIT = 2000


@dataclass(frozen=True)
class LogFilter:
    types: tuple[str, ...] = ()
    organizer: str | None = None
    aggregate: str | None = None

    @classmethod
    def parse(cls, types: list[str], organizer: str | None, aggregate: str | None) -> LogFilter:
        """Validate like the API does: unknown names are a 422 next to their field."""
        wanted = tuple(t for t in types if t)
        unknown = [t for t in wanted if t not in event_log.TYPE_NAMES]
        if unknown:
            raise ValidationFailed({"type": [_("%(type)s is not an event type.", type=repr(unknown[0]))]})
        aggregate = (aggregate or "").strip() or None
        if aggregate is not None:
            try:
                aggregate = str(UUID(aggregate))
            except ValueError:
                raise ValidationFailed({"aggregate": [_("Enter an aggregate id (a UUID).")]}) from None
        organizer = (organizer or "").strip() or None
        if organizer is not None and len(organizer) > 100:
            raise ValidationFailed({"organizer": [_("Enter an organizer id.")]})
        return cls(wanted, organizer, aggregate)

    def matches(self, item: event_log.LogItem) -> bool:
        return (
            (not self.types or item.type in self.types)
            and (self.organizer is None or item.organizer_id == self.organizer)
            and (self.aggregate is None or item.aggregate_id == self.aggregate)
        )


@dataclass(frozen=True)
class LogPage:
    items: list[dict[str, Any]] = field(default_factory=list)
    #: position to continue after, or None at the end of the log (for now)
    next: int | None = None
    #: True when the page stopped because of SCAN_BUDGET, not because it was full
    partial: bool = False


def _shown(item: event_log.LogItem) -> dict[str, Any]:
    entry = item.as_dict(include_pii=True)
    entry["data"] = redact(entry["data"])
    return entry


def browse(ledger: Ledger, flt: LogFilter, *, after: str | int | None, limit: str | int | None) -> LogPage:
    """One page of the log after position ``after`` matching ``flt``."""
    position = parse_position(after)
    size = parse_limit(limit, default=50, maximum=200)
    if flt.aggregate is not None:
        candidates = event_log.read_aggregate(ledger.store, flt.aggregate, after=position, limit=size + 1)
        more = len(candidates) > size
        items = [i for i in candidates[:size] if flt.matches(i)]
        last = candidates[size - 1].position if more else None
        return LogPage(items=[_shown(i) for i in items], next=last)
    found: list[event_log.LogItem] = []
    scanned = 0
    while True:
        batch = event_log.read(ledger.store, after=position, limit=max(size * 2, 200), types=flt.types)
        if not batch:
            return LogPage(items=[_shown(i) for i in found], next=None)
        for item in batch:
            position = item.position
            if flt.matches(item):
                found.append(item)
                if len(found) == size:
                    return LogPage(items=[_shown(i) for i in found], next=position)
        scanned += len(batch)
        if scanned >= SCAN_BUDGET:
            return LogPage(items=[_shown(i) for i in found], next=position, partial=True)


def history(ledger: Ledger, aggregate_id: str) -> list[dict[str, Any]]:
    """Every event of one aggregate (a registration's full history), oldest first."""
    return [_shown(i) for i in event_log.read_aggregate(ledger.store, aggregate_id, after=0, limit=HISTORY_LIMIT)]
