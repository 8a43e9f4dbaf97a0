"""The projection runner: keeps the read models current with the event store.

``ledger worker projections`` (and ``ledger run``) start it through
:func:`build`.  It reads the notification log in global order, a batch at a
time, and applies each batch to the active generation's tables in one
transaction together with the generation's tracking position (see
``projections.batch``): killed at any line, it neither skips nor repeats an
event.  When it has caught up it blocks on PostgreSQL ``LISTEN`` for the event
store's channel (``ledger_events``), which every committing writer ``NOTIFY``s,
so a new event is in the views within milliseconds and nothing polls.

Several runners may run at once (say ``ledger run`` and a stray ``ledger worker
projections``): each batch locks the generation's row first, so they take turns
and never apply the same event twice.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from ledger.event_log import head
from projections import generations
from projections.batch import Reader, apply_batch
from projections.decoding import EventDecoder

if TYPE_CHECKING:
    from entrypoints.bootstrap import Ledger

log = logging.getLogger(__name__)

#: Notifications per transaction: big enough to amortise round trips, small
#: enough that a batch commits in well under a second (lag stays low, memory flat).
DEFAULT_BATCH_SIZE = 4000


class LayoutOutdated(Exception):
    """The active generation was built by code with another table layout."""


class ProjectionRunner:
    """A ``workers.base.Worker``: ``run(stop)`` returns within about
    ``idle_timeout`` seconds of ``stop`` being set (or one batch, if busy)."""

    name = "projections"

    def __init__(
        self, ledger: Ledger, *, batch_size: int = DEFAULT_BATCH_SIZE, idle_timeout: float = 0.5
    ) -> None:
        self.ledger = ledger
        self.batch_size = batch_size
        self.idle_timeout = idle_timeout
        self.decoder = EventDecoder(ledger.store.mapper)

    def step(self, reader: Reader | None = None) -> int:
        """Apply one batch in one transaction; how far the position moved (0
        when caught up)."""
        if reader is None:
            with Reader(self.ledger.store.recorder, self.batch_size) as own:
                return self.step(own)
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
                batch = reader.read(generation.position)
                return apply_batch(conn, generation, self.decoder, batch)
        raise RuntimeError("no active projection generation (is projections/schema.sql applied?)")

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

    def _listen(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self.ledger.database_url, autocommit=True)
        channel = self.ledger.store.recorder.channel_name  # type: ignore[attr-defined]
        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        return conn

    def run(self, stop: threading.Event) -> None:
        """Follow the log until ``stop`` is set.  LISTEN is issued before the
        first catch-up, so a commit between "caught up" and "wait" still wakes
        us.  Errors (database restarts …) are logged and retried with back-off;
        an event that cannot be applied is retried, never skipped."""
        listener: psycopg.Connection[Any] | None = None
        backoff = 0.5
        try:
            while not stop.is_set():
                try:
                    if listener is None:
                        listener = self._listen()
                    self.catch_up(stop)
                    if stop.is_set():
                        break
                    for _ in listener.notifies(timeout=self.idle_timeout, stop_after=1):
                        pass
                    backoff = 0.5
                except LayoutOutdated as outdated:
                    from projections.rebuild import rebuild

                    log.warning("%s: rebuilding the views before following the log", outdated)
                    try:
                        rebuild(self.ledger, progress=False, stop=stop)
                    except Exception:  # e.g. another process is rebuilding: wait for it
                        log.exception("rebuild for the new layout failed; retrying in %.1fs", backoff)
                        stop.wait(backoff)
                        backoff = min(backoff * 2, 30.0)
                except Exception:
                    log.exception("projection runner failed; retrying in %.1fs", backoff)
                    if listener is not None:
                        listener.close()
                        listener = None
                    stop.wait(backoff)
                    backoff = min(backoff * 2, 30.0)
        finally:
            if listener is not None:
                listener.close()


def build(ledger: Ledger) -> ProjectionRunner:
    """The worker factory named in ``workers.base.WORKERS``."""
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
