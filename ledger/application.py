"""The event store: an ``eventsourcing`` Application over PostgreSQL.

Kept apart from the command service so that workers and projections can open
the same store (to read the notification log) without the command machinery.
"""

from __future__ import annotations

from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import MutableOrImmutableAggregate
from eventsourcing.persistence import Transcoder

from ledger.domain.organizer import Organizer
from ledger.domain.paid_event import PaidEvent
from ledger.domain.registration import Registration


class LedgerStore(Application[UUID]):
    """Organizers, paid events and registrations in one append-only store.

    One store means one global order (the notification log) for every fact, which
    is what the projections, the relay and the notify worker follow.
    """

    name = "ledger"
    # A popular event accumulates one seat event per registration: snapshots keep
    # its reconstruction short; the cache (with fast-forward) keeps it cheap.
    snapshotting_intervals: ClassVar[dict[type[MutableOrImmutableAggregate[Any]], int]] = {
        PaidEvent: 200,
        Registration: 50,
        Organizer: 50,
    }
    env: ClassVar[dict[str, str]] = {
        "AGGREGATE_CACHE_MAXSIZE": "2000",
        "AGGREGATE_CACHE_FASTFORWARD": "y",
        "COMPRESSOR_TOPIC": "",
    }

    def register_transcodings(self, transcoder: Transcoder) -> None:
        super().register_transcodings(transcoder)  # type: ignore[arg-type]
