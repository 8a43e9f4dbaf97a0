"""The event store: an ``eventsourcing`` Application over PostgreSQL.

Kept apart from the command service so that workers and projections can open
the same store (to read the notification log) without the command machinery.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import DomainEventProtocol, MutableOrImmutableAggregate
from eventsourcing.persistence import Mapper, StoredEvent, Transcoder
from eventsourcing.postgres import PostgresAggregateRecorder, PostgresApplicationRecorder

from ledger.actor import current_actor
from ledger.domain.organizer import Organizer
from ledger.domain.paid_event import PaidEvent
from ledger.domain.registration import Registration


class LedgerRecorder(PostgresApplicationRecorder):
    """The library's recorder, with one change: large saves skip pipeline mode.

    Why: saving ~1,500+ events in one pipelined transaction (e.g. cancelling an
    event with thousands of registrations) deadlocks psycopg's pipeline while the
    table lock is held, which would stop every writer.  Large batches therefore
    run as plain statements in one transaction — same lock, same NOTIFY, same
    atomicity — at the price of a few more round trips.
    """

    PIPELINE_LIMIT = 500

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        if len(stored_events) <= self.PIPELINE_LIMIT:
            return super().insert_events(stored_events, **kwargs)
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            self._lock_table(curs)
            self._notify_channel(curs)
            PostgresAggregateRecorder._insert_stored_events(self, curs, stored_events, **kwargs)
            return self._fetch_ids_after_insert_events(curs, stored_events, **kwargs)


class ActorMapper(Mapper[UUID]):
    """Stores the current actor (see ``ledger.actor``) with each new event.

    The ``actor`` key travels in the stored state beside the event's own fields;
    replaying ignores it (mutators take only their own parameters), and the
    event log lifts it into the envelope for auditors.
    """

    def to_stored_event(self, domain_event: DomainEventProtocol[UUID]) -> StoredEvent:
        if "actor" not in vars(domain_event):
            object.__setattr__(domain_event, "actor", current_actor.get())
        return super().to_stored_event(domain_event)


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
        "APPLICATION_RECORDER_TOPIC": "ledger.application:LedgerRecorder",
    }

    def construct_mapper(self) -> Mapper[UUID]:
        return self.factory.mapper(transcoder=self.construct_transcoder(), mapper_class=ActorMapper)

    def register_transcodings(self, transcoder: Transcoder) -> None:
        super().register_transcodings(transcoder)  # type: ignore[arg-type]
