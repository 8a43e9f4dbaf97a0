"""``ledger rebuild``: rebuild every view from position 0 into a fresh
generation, then switch readers over atomically.

While the new generation fills, the API keeps reading the active one and the
runner keeps it current.  The switch is one transaction that (1) locks the
active generation's row — waiting for the runner's batch in flight, (2) applies
whatever the new generation still lacks up to the head, (3) re-points the views
and flips the states.  Readers see the old tables or the new ones, never a mix.

Interruptions are cheap: every batch commits with the building generation's
position, so a killed rebuild is resumed by the next ``rebuild`` call (or thrown
away with ``restart=True``).  Only one rebuild runs at a time (advisory lock).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import psycopg

from ledger.event_log import head
from ledger.log_follower import EventFailed
from projections import generations
from projections.batch import Batch, Reader, apply_batch, event_type, locate_failure, read_batch
from projections.decoding import EventDecoder
from projections.generations import Generation
from projections.paging import RebuildInProgress

if TYPE_CHECKING:
    from ledger.container import Ledger

REBUILD_LOCK_KEY = 0x1ED6E8  # advisory lock: one rebuild at a time
DEFAULT_BATCH_SIZE = 5000


class RebuildFailed(Exception):
    """An event could not be applied to the generation being built.  Nothing
    is switched: readers keep the active views, and the building generation
    keeps every batch before the failing one, so fixing the cause and running
    ``ledger rebuild`` again resumes there."""

    def __init__(self, generation: int, position: int, event_type: str | None, cause: BaseException) -> None:
        where = f"at position {position} ({event_type})" if event_type else f"after position {position}"
        super().__init__(
            f"rebuilding generation {generation} stopped {where}: {type(cause).__name__}: {cause}".strip()
        )
        self.generation, self.position, self.event_type, self.cause = generation, position, event_type, cause


def _failure(ledger: Ledger, generation: Generation, batch: Batch | None, error: Exception) -> Exception:
    """``error`` as :class:`RebuildFailed` naming the event to blame when one is."""
    if isinstance(error, RebuildInProgress | EventFailed):
        return error
    if batch is None or not batch.notifications or isinstance(error, psycopg.OperationalError):
        return RebuildFailed(generation.generation, generation.position, None, error)
    try:
        with ledger.db.transaction() as conn:
            found = locate_failure(conn, generation, EventDecoder(ledger.store.mapper), batch)
    except Exception:
        found = None
    if found is None:
        return RebuildFailed(generation.generation, batch.after, None, error)
    notification, cause = found
    return RebuildFailed(generation.generation, notification.id, event_type(notification), cause)


@dataclass(frozen=True)
class RebuildResult:
    generation: int
    events: int  # notifications applied by this call (less than position when resumed)
    position: int  # where the new generation stands (the head at switch time)
    seconds: float
    resumed: bool

    @property
    def rate(self) -> float:
        """Events per second over this call."""
        return self.events / self.seconds if self.seconds > 0 else 0.0


def _progress_bar() -> Any:
    """events done / total, events per second, elapsed, ETA — on stderr, so
    stdout stays clean for scripts."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:,.0f} events/s" if speed else "… events/s")

    bar = Progress(
        TextColumn("rebuilding views"), BarColumn(), MofNCompleteColumn(), RateColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True),
    )
    return bar


def _fill(
    ledger: Ledger, generation: Generation, batch_size: int, stop: threading.Event | None,
    on_batch: Callable[[int], None],
) -> tuple[int, int]:
    """Apply batches to the building generation until it reaches the head; one
    transaction per batch, so an interruption loses at most the batch in flight."""
    applied = 0
    position = generation.position
    decoder = EventDecoder(ledger.store.mapper)
    with Reader(ledger.store.recorder, batch_size) as reader:
        while stop is None or not stop.is_set():
            batch: Batch | None = None
            locked: Generation | None = generation
            try:
                with ledger.db.transaction() as conn:
                    locked = generations.lock(conn, generation.generation)
                    if locked is None or locked.state != "building":
                        raise RebuildInProgress("the generation being rebuilt was removed by another process")
                    batch = reader.read(locked.position)
                    moved = apply_batch(conn, locked, decoder, batch)
            except Exception as error:
                raise _failure(ledger, locked or generation, batch, error) from error
            if not moved:
                break
            applied += moved
            position = batch.reached
            on_batch(position)
    return applied, position


def _switch(ledger: Ledger, generation: Generation, batch_size: int) -> tuple[int, int]:
    """Catch up the last events and activate, in one transaction (module doc)."""
    applied = 0
    decoder = EventDecoder(ledger.store.mapper)
    with ledger.db.transaction() as conn:
        old = None
        for _ in range(5):
            old = generations.active(conn, lock=True)
            if old is not None:
                break
        locked = generations.lock(conn, generation.generation)
        assert locked is not None
        failed: tuple[Generation, Batch, Exception] | None = None
        while True:
            batch = read_batch(ledger.store.recorder, locked.position, batch_size)
            try:
                with conn.transaction():  # a savepoint: the failing batch alone is undone
                    moved = apply_batch(conn, locked, decoder, batch)
            except Exception as error:
                failed = (locked, batch, error)
                break
            if not moved:
                break
            applied += moved
            locked = replace(locked, position=batch.reached)
        if failed is None:
            generations.activate(conn, locked, old)
    if failed is not None:
        raise _failure(ledger, *failed) from failed[2]
    return applied, locked.position


def _drop_retired(ledger: Ledger) -> None:
    with ledger.db.transaction() as conn:
        for old in generations.retired(conn):
            generations.drop(conn, old)


def rebuild(
    ledger: Ledger, progress: bool = False, *, restart: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE, stop: threading.Event | None = None,
) -> RebuildResult:
    """Rebuild every view from position 0 and switch over.  ``progress`` draws a
    bar (events done / total, rate, ETA) on stderr.  An unfinished rebuild is
    resumed unless ``restart``.  If ``stop`` is set mid-way, returns early and
    leaves the building generation to be resumed (``RebuildResult.position`` <
    head).  Raises ``RebuildInProgress`` if another rebuild holds the lock."""
    started = time.perf_counter()
    with psycopg.connect(ledger.database_url, autocommit=True) as lock_conn:
        got = lock_conn.execute("SELECT pg_try_advisory_lock(%s)", (REBUILD_LOCK_KEY,)).fetchone()
        if not got or not got[0]:
            raise RebuildInProgress("another `ledger rebuild` is running; wait for it to finish")
        try:
            return _rebuild_locked(ledger, progress, restart, batch_size, stop, started)
        finally:
            lock_conn.execute("SELECT pg_advisory_unlock(%s)", (REBUILD_LOCK_KEY,))


def _rebuild_locked(
    ledger: Ledger, progress: bool, restart: bool, batch_size: int, stop: threading.Event | None,
    started: float,
) -> RebuildResult:
    _drop_retired(ledger)  # left over by a crash between switch and clean-up
    total = head(ledger.store)
    with ledger.db.transaction() as conn:
        generation = generations.building(conn, lock=True)
        if generation is not None and (restart or generation.layout != generations.LAYOUT):
            generations.drop(conn, generation)
            generation = None
        resumed = generation is not None
        if generation is None:
            generation = generations.create_building(conn, target=total)
        else:
            generations.set_target(conn, generation.generation, total)
    bar = None
    task = None
    if progress:
        bar = _progress_bar()
        bar.start()
        task = bar.add_task("rebuild", total=max(total, 1), completed=generation.position)

    def on_batch(position: int) -> None:
        if bar is not None:
            newest = max(total, position)
            bar.update(task, completed=position, total=newest)

    try:
        applied, position = _fill(ledger, generation, batch_size, stop, on_batch)
        if stop is not None and stop.is_set():
            return RebuildResult(generation.generation, applied, position,
                                 time.perf_counter() - started, resumed)
        more, position = _switch(ledger, generation, batch_size)
        on_batch(position)
        applied += more
    finally:
        if bar is not None:
            bar.stop()
    _drop_retired(ledger)
    return RebuildResult(generation.generation, applied, position, time.perf_counter() - started, resumed)
