"""One way to follow the notification log: the projection runner, the relay and
the notify worker all consume it through :class:`LogFollower`.

The follower does four things and owns nothing else:

* **wakes on commit** — it LISTENs on the event store's channel (every
  committing writer ``NOTIFY``s it; see ``ledger.application``) on a connection
  of its own, *before* its first read, so a commit between "caught up" and
  "wait" still wakes the wait.  Nothing polls: a re-read every
  ``reread_after`` seconds is only a safety net;
* **reads by position** — batches of at most ``batch_size`` notifications
  after a position, from the store's recorder, in the log's global order;
* **hands each batch to a consumer** (:class:`LogConsumer`) that commits its
  effect *together with its own tracking position* (the follower keeps no
  position of its own in the database: killed at any line, the consumer's
  transaction either happened, position included, or did not);
* **backs off, then retries from the consumer's position** when anything
  raises (the consumer, a read, the connection): never skips an event, and
  shows the failure in :attr:`LogFollower.health` -- and, for other
  processes (``/readyz``, ``ledger status``), in the ``consumer_health``
  table (:mod:`ledger.consumer_health`).  A consumer that knows which event
  it could not apply raises :class:`EventFailed`, so that event is named.

``run`` returns within about :data:`STOP_CHECK` seconds of ``stop`` being set,
or once the call in progress returns (a consumer call, a read, a connect of at
most :data:`CONNECT_TIMEOUT` seconds).  Every wait is bounded: by ``stop`` and
:data:`STOP_CHECK`, ``reread_after``, ``backoff_max`` or ``standby_wait``.
"""

from __future__ import annotations

import abc
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from eventsourcing.persistence import ApplicationRecorder, Notification
from psycopg import sql

from ledger import consumer_health
from ledger.consumer_health import FollowerHealth, HealthWriter, error_class, safe_message
from ledger.database import connect

log = logging.getLogger(__name__)

#: Seconds: the longest any wait inside the follower goes without looking at ``stop``.
STOP_CHECK = 0.25
#: Seconds: the shortest wait for a NOTIFY, whatever a consumer asks (no busy loop).
MIN_WAIT = 0.001
#: Seconds to open the LISTEN connection before that attempt counts as failed.
CONNECT_TIMEOUT = 5
#: Seconds without a failure after which the next failure backs off from the start again.
QUIET_RESET = 10.0


@dataclass(frozen=True)
class LogBatch:
    """Notifications with position > ``after``, in order, and ``reached``: how
    far the log has been read (a filtering reader may skip positions, so
    ``reached`` can be beyond the last notification)."""

    after: int
    notifications: Sequence[Notification]
    reached: int


def read_batch(recorder: ApplicationRecorder, after: int, limit: int) -> LogBatch:
    """The next ``limit`` notifications after ``after``.  Safe to read at any
    time: the store inserts under an exclusive table lock, so commit order is
    position order and no smaller position can appear later."""
    found = recorder.select_notifications(start=after, limit=limit, inclusive_of_start=False)
    return LogBatch(after, found, found[-1].id if found else after)


class EventFailed(Exception):
    """A consumer could not apply the event at ``position`` (its public
    ``event_type``); ``cause`` says why.  Raised by a consumer that can name
    the event, so health, ``/readyz`` and ``ledger status`` name it too."""

    def __init__(self, position: int, event_type: str, cause: BaseException) -> None:
        super().__init__(f"event {position} ({event_type}): {type(cause).__name__}: {cause}")
        self.position, self.event_type, self.cause = position, event_type, cause


class Standby(Exception):
    """Raised by :meth:`LogConsumer.attach` or :meth:`LogConsumer.resume` when
    another process holds this consumer's job: the follower waits
    ``standby_wait`` seconds and asks again, without counting a failure."""


class CommitListener:
    """LISTEN on the event store's NOTIFY channel, on a connection of its own
    (not a pool's, which it would hold forever).

    A session-level advisory lock taken here (:meth:`try_advisory_lock`) lives
    exactly as long as this connection: it dies with the process, and with a
    broken connection, after which the follower opens a new one and asks the
    consumer to attach again."""

    def __init__(self, url: str, channel: str) -> None:
        # With the session timeouts (ledger.database): never in a transaction,
        # but its advisory-lock calls must not wait without limit either.
        self.conn = connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT)
        try:
            self.conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        except BaseException:
            self.conn.close()
            raise

    def wait(self, timeout: float) -> bool:
        """Return at the first NOTIFY (True) or after ``timeout`` seconds (False)."""
        notified = False
        for _ in self.conn.notifies(timeout=timeout, stop_after=1):
            notified = True
        return notified

    def try_advisory_lock(self, name: str) -> bool:
        """Take the session-level advisory lock named ``name``, without waiting."""
        key = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)
        row = self.conn.execute("SELECT pg_try_advisory_lock(%s::bigint)", (key,)).fetchone()
        return bool(row and row[0])

    def close(self) -> None:
        self.conn.close()


class LogConsumer(abc.ABC):
    """What a follower hands batches to.  All calls come from the follower's
    thread, one at a time.

    The contract that makes a worker restartable at any line: ``consume``
    commits its effect and its tracking position in one transaction (or, like
    the relay, moves its position only once the effect is durable elsewhere),
    and ``resume`` returns that committed position — so after a crash or a
    failed attempt the next batch starts exactly after the last effect."""

    def attach(self, listener: CommitListener) -> None:  # noqa: B027 - optional hook
        """Called with each new LISTEN connection, before :meth:`resume`.  A
        consumer that must run once per database takes its advisory lock here
        (and raises :class:`Standby` if another process holds it)."""

    @abc.abstractmethod
    def resume(self) -> int:
        """The committed position to read after.  Called before the first batch
        and after every failure, so it is also where a consumer (re)opens what
        it needs (the relay's broker session)."""

    @abc.abstractmethod
    def consume(self, batch: LogBatch) -> int:
        """Apply ``batch`` and return the position to continue after: normally
        ``batch.reached``; less if it stopped early; more if another process
        had already gone further.  Raise to have it retried after a backoff."""

    def idle(self) -> float | None:
        """Called while caught up, before each wait: housekeeping (the relay
        records acknowledgements here).  Returns the longest the follower may
        wait for a NOTIFY before calling again, or None for no preference."""
        return None

    def abandon(self, error: BaseException) -> None:  # noqa: B027 - optional hook
        """The attempt failed with ``error``: release what :meth:`resume` set up
        before the backoff.  Errors raised here are logged and ignored."""


class LogFollower:
    """Follows the notification log of ``recorder`` for one :class:`LogConsumer`.

    ``read(after)`` replaces the plain batch read (the projection runner reads
    only the topics it needs, prefetching); it must return batches starting
    right after ``after``.  Backoff after a failure starts at ``backoff_initial``
    and doubles per consecutive failure up to ``backoff_max``; it starts over
    when the consumer's position moved since the last failure or after
    :data:`QUIET_RESET` seconds without one.
    """

    def __init__(
        self, recorder: ApplicationRecorder, database_url: str, consumer: LogConsumer, *, name: str,
        batch_size: int = 500, read: Callable[[int], LogBatch] | None = None, reread_after: float = 5.0,
        backoff_initial: float = 0.5, backoff_max: float = 30.0, standby_wait: float = 1.0,
    ) -> None:
        channel = getattr(recorder, "channel_name", None)
        if not isinstance(channel, str):
            raise TypeError("LogFollower follows a PostgreSQL recorder (it LISTENs for its NOTIFY)")
        if batch_size < 1 or reread_after <= 0 or not 0 < backoff_initial <= backoff_max:
            raise ValueError("batch_size >= 1, reread_after > 0 and 0 < backoff_initial <= backoff_max")
        self.recorder, self.database_url, self.channel = recorder, database_url, channel
        self.consumer, self.name, self.batch_size = consumer, name, batch_size
        self.read: Callable[[int], LogBatch] = read or (lambda after: read_batch(recorder, after, batch_size))
        self.reread_after, self.standby_wait = reread_after, standby_wait
        self.backoff_initial, self.backoff_max = backoff_initial, backoff_max
        self._health = FollowerHealth()
        self._streak = 0  # consecutive failures that count for the backoff
        self._resumed_at: int | None = None  # what the consumer's last resume() returned
        self._failed_resumed_at: int | None = None  # ... as of the last failure
        self._retried_at: float | None = None  # monotonic time the last failure's backoff ended
        #: Writes ``health`` for other processes (ledger.consumer_health); set None: in memory only.
        self.reporter: HealthWriter | None = HealthWriter(database_url, name)

    @property
    def health(self) -> FollowerHealth:
        return self._health

    def run(self, stop: threading.Event) -> None:
        """Follow until ``stop`` is set.  An error while ``stop`` is set ends the
        run quietly (a consumer may raise to leave a blocking wait)."""
        listener: CommitListener | None = None
        position: int | None = None
        try:
            while not stop.is_set():
                attempt = position
                try:
                    if listener is None:
                        listener = CommitListener(self.database_url, self.channel)
                        self.consumer.attach(listener)  # LISTEN is on before the first read below
                        position = None
                    if position is None:
                        position = attempt = self.consumer.resume()
                        self._resumed(position)
                    batch = self.read(position)
                    if batch.reached > position:
                        attempt = batch.after
                        position = self.consumer.consume(batch)
                        self._progressed(batch.after, position)
                        continue
                    self._progressed(position, position)  # caught up: not stuck
                    self._wait(stop, listener)
                except Standby:
                    if listener is not None:
                        listener.close()
                    listener, position = None, None
                    self._health = replace(self._health, standing_by=True)
                    stop.wait(self.standby_wait)
                except Exception as error:
                    if stop.is_set():
                        log.debug("%s: stopped during an attempt (%s)", self.name, error)
                        return
                    delay = self._failed(error, attempt)
                    try:
                        self.consumer.abandon(error)
                    except Exception:
                        log.exception("%s: releasing the failed attempt failed", self.name)
                    if listener is not None:
                        listener.close()  # it may be the broken part; its locks go with it
                    listener, position = None, None  # next attempt: resume() says where
                    stop.wait(delay)
        finally:
            if listener is not None:
                listener.close()
            if self.reporter is not None:
                self.reporter.close()

    # --- waiting -------------------------------------------------------------------------

    def _wait(self, stop: threading.Event, listener: CommitListener) -> None:
        """Until a NOTIFY, ``reread_after`` seconds, or ``stop``: each wait on
        the connection lasts at most STOP_CHECK (or what ``idle`` asks, at least
        MIN_WAIT), so at most reread_after / MIN_WAIT iterations."""
        deadline = time.monotonic() + self.reread_after
        while not stop.is_set():
            asked = self.consumer.idle()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            timeout = min(left, STOP_CHECK if asked is None else max(MIN_WAIT, asked), STOP_CHECK)
            if listener.wait(timeout):
                return

    # --- health and backoff --------------------------------------------------------------

    def _resumed(self, position: int) -> None:
        if self._failed_resumed_at is not None and position > self._failed_resumed_at:
            self._streak = 0  # the consumer committed progress since the last failure
        self._resumed_at = position
        self._health = replace(self._health, position=position, standing_by=False)
        self._report()

    def _progressed(self, after: int, position: int) -> None:
        health = self._health
        if health.failures and (health.failing_after is None or after >= health.failing_after):
            health = replace(  # got past the failing batch
                health, failures=0, failing_after=None, failing_since=None, failing_event=None, event_type=None,
                error_class=None, error=None,
            )
        if health.position != position:
            health = replace(health, position=position)
        self._health = health
        self._report()

    def _report(self) -> None:
        if self.reporter is not None and not self._health.standing_by:
            self.reporter.report(self._health)

    def _failed(self, error: BaseException, attempt: int | None) -> float:
        """Record the failure; return the backoff delay (at most backoff_max)."""
        now = time.monotonic()
        if self._retried_at is not None and now - self._retried_at > QUIET_RESET:
            self._streak = 0
        self._streak += 1
        delay = min(self.backoff_max, self.backoff_initial * 2 ** min(self._streak - 1, 30))
        self._retried_at, self._failed_resumed_at = now + delay, self._resumed_at
        health = self._health
        cause = error.cause if isinstance(error, EventFailed) else error
        self._health = health = replace(
            health, failures=health.failures + 1,
            failing_after=attempt if attempt is not None else health.failing_after,
            last_error=f"{type(error).__name__}: {error}",
            failing_since=health.failing_since or consumer_health.now(),
            failing_event=error.position if isinstance(error, EventFailed) else None,
            event_type=error.event_type if isinstance(error, EventFailed) else None,
            error_class=error_class(cause), error=safe_message(cause),
        )
        self._report()
        log.error(
            "%s: failed after position %s (%d in a row): %s: %s; retrying in %.1fs",
            self.name, health.failing_after, health.failures, type(error).__name__, error, delay,
            exc_info=error if self._streak == 1 else None,
        )
        return delay
