"""The projection runner: keeps the read models current with the event store.

``ledger worker projections`` (and ``ledger run``) start it through
:func:`build`.  It follows the notification log with ``ledger.log_follower``
(woken by the event store's NOTIFY, so a new event is in the views within
milliseconds and nothing polls) and applies each batch to the active
generation's tables in one transaction together with the generation's tracking
position (see ``projections.batch``): killed at any line, it neither skips nor
repeats an event.

Several runners may run at once (say ``ledger run`` and a stray ``ledger worker
projections``): each batch locks the generation's row first, so they take turns
and never apply the same event twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg

from ledger.event_log import head
from ledger.log_follower import EventFailed, LogBatch, LogConsumer, LogFollower
from projections import generations
from projections.batch import Batch, Reader, apply_batch, event_type, locate_failure
from projections.decoding import EventDecoder

if TYPE_CHECKING:
    from ledger.container import Ledger

log = logging.getLogger(__name__)

#: Notifications per transaction: big enough to amortise round trips, small
#: enough that a batch commits in well under a second (lag stays low, memory flat).
DEFAULT_BATCH_SIZE = 4000


class LayoutOutdated(Exception):
    """The active generation was built by code with another table layout."""


class ProjectionRunner(LogConsumer):
    """A ``workers.base.Worker``: ``run(stop)`` returns within about a quarter
    of a second of ``stop`` being set (or one batch, if busy).  Its
    ``LogConsumer`` side is what the follower calls; ``step`` and ``catch_up``
    apply batches synchronously (tests, benchmarks)."""

    name = "projections"

    def __init__(
        self, ledger: Ledger, *, batch_size: int = DEFAULT_BATCH_SIZE, idle_timeout: float = 0.5
    ) -> None:
        self.ledger = ledger
        self.batch_size = batch_size
        self.idle_timeout = idle_timeout  #: seconds between safety-net re-reads while idle
        self.decoder = EventDecoder(ledger.store.mapper)
        self.follower: LogFollower | None = None  #: while ``run`` follows: its health
        self._reader: Reader | None = None
        self._stop: threading.Event | None = None

    def step(self, reader: Reader | None = None) -> int:
        """Apply one batch in one transaction; how far the position moved (0
        when caught up)."""
        if reader is None:
            with Reader(self.ledger.store.recorder, self.batch_size) as own:
                return self.step(own)
        return self._apply_locked(reader.read)[0]

    def catch_up(self, stop: threading.Event | None = None) -> int:
        """Apply batches until the views are at the head; how far the position
        moved (= events consumed, relevant or not)."""
        total = 0
        with Reader(self.ledger.store.recorder, self.batch_size) as reader:
            while stop is None or not stop.is_set():
                done = self.step(reader)
                if not done:
                    break
                total += done
        return total

    def _apply_locked(self, read: Callable[[int], Batch]) -> tuple[int, int]:
        """Lock the active generation's row, read the batch after its position
        and apply it in the same transaction: (how far it moved, new position)."""
        for _ in range(5):
            with self.ledger.db.transaction() as conn:
                generation = generations.active(conn, lock=True)
                if generation is None:
                    continue  # a rebuild switched generations while we waited: look again
                if generation.layout != generations.LAYOUT:
                    raise LayoutOutdated(
                        f"generation {generation.generation} has layout {generation.layout}, "
                        f"this code writes layout {generations.LAYOUT}"
                    )
                moved = apply_batch(conn, generation, self.decoder, read(generation.position))
                return moved, generation.position + moved
        raise RuntimeError("no active projection generation (is projections/schema.sql applied?)")

    def run(self, stop: threading.Event) -> None:
        """Follow the log until ``stop`` is set.  Errors (database restarts, an
        event that cannot be applied …) are logged and retried with backoff
        (0.5 s doubling up to 30 s); an event is retried, never skipped."""
        with Reader(self.ledger.store.recorder, self.batch_size) as reader:
            self._reader, self._stop = reader, stop
            self.follower = LogFollower(
                self.ledger.store.recorder, self.ledger.database_url, self, name="projections",
                batch_size=self.batch_size, read=lambda after: _log_batch(reader.read(after)),
                reread_after=self.idle_timeout, backoff_initial=0.5, backoff_max=30.0,
            )
            try:
                self.follower.run(stop)
            finally:
                self._reader = None

    # --- LogConsumer -------------------------------------------------------------------

    def resume(self) -> int:
        """The active generation's position (after rebuilding it if this code
        writes another layout: otherwise a caught-up runner would never notice)."""
        generation = self._active()
        if generation is not None and generation.layout != generations.LAYOUT:
            self._rebuild(LayoutOutdated(f"generation {generation.generation} has layout {generation.layout}"))
            generation = self._active()
        return generation.position if generation is not None else 0

    def consume(self, batch: LogBatch) -> int:
        """Apply ``batch`` under the generation's row lock, position included.
        If another runner moved the position while the batch was read, read
        again from the locked position instead (never apply an event twice)."""
        assert self._reader is not None
        reader, read = self._reader, Batch(batch.after, batch.notifications, batch.reached)
        try:
            return self._apply_locked(lambda after: read if after == read.after else reader.read(after))[1]
        except LayoutOutdated as outdated:
            self._rebuild(outdated)
            return self.resume()
        except Exception as error:
            raise self._named(error, read) from error

    def _named(self, error: Exception, batch: Batch) -> Exception:
        """``error`` as :class:`EventFailed` naming the event of ``batch`` that
        fails (the follower reports it: ``/readyz``, ``ledger status``), or
        ``error`` itself when no single event is to blame (a lost connection)."""
        if isinstance(error, psycopg.OperationalError) or not batch.notifications:
            return error
        try:
            with self.ledger.db.transaction() as conn:
                generation = generations.active(conn, lock=True)
                if generation is None or generation.position != batch.after:
                    return error
                found = locate_failure(conn, generation, self.decoder, batch)
        except Exception:
            log.exception("%s: could not tell which event fails", self.name)
            return error
        if found is None:
            return error
        notification, cause = found
        return EventFailed(notification.id, event_type(notification), cause)

    def _active(self) -> generations.Generation | None:
        with self.ledger.db.transaction() as conn:
            return generations.active(conn)

    def _rebuild(self, outdated: LayoutOutdated) -> None:
        """Rebuild into this code's layout; raises (and the follower backs off)
        if it cannot, e.g. while another process rebuilds."""
        from projections.rebuild import rebuild

        log.warning("%s: rebuilding the views before following the log", outdated)
        rebuild(self.ledger, progress=False, stop=self._stop)


def _log_batch(batch: Batch) -> LogBatch:
    return LogBatch(batch.after, batch.notifications, batch.reached)


def build(ledger: Ledger) -> ProjectionRunner:
    """The worker factory named in ``entrypoints.worker_registry.WORKERS``."""
    return ProjectionRunner(ledger)


@dataclass(frozen=True)
class ProjectionStatus:
    generation: int | None
    position: int
    head: int
    lag: int
    rebuilding: bool
    rebuild_position: int | None
    rebuild_target: int | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def status(ledger: Ledger) -> ProjectionStatus:
    """Where the views are: active generation, its position, the head, the lag,
    and an unfinished rebuild if any (for ``ledger status``)."""
    with ledger.db.transaction() as conn:
        active = generations.active(conn)
        building = generations.building(conn)
    newest = head(ledger.store)
    position = active.position if active else 0
    return ProjectionStatus(
        generation=active.generation if active else None, position=position, head=newest,
        lag=max(0, newest - position), rebuilding=building is not None,
        rebuild_position=building.position if building else None,
        rebuild_target=building.target if building else None,
    )


def lag(ledger: Ledger) -> int:
    """Events committed but not yet in the views the API reads (for ``/readyz``
    and ``ledger status``): head position minus the active generation's."""
    return status(ledger).lag
