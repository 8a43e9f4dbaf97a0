"""How each follower of the log is doing, told to every other process.

A view or worker that cannot apply an event retries with backoff
(:mod:`ledger.log_follower`) -- but it runs in a process of its own, and
``/readyz`` (the API's processes) and ``ledger status`` must learn about it.
So each follower writes its health to one row of ``consumer_health``
(ledger/schema.sql), named after the consumer (``projections``, ``relay``,
``notify``):

* **when** -- on its first position, on every change between healthy and
  failing, and otherwise at most once per :data:`WRITE_INTERVAL` while its
  position moves: at most one small upsert per second per consumer, whatever
  the load (a failing consumer writes once per backoff, 0.5 s to 15 min);
* **what** -- position, when it last moved, and while failing: since when, the
  failing event's position and type when the consumer names it, the error's
  class and a message with quoted values, e-mail addresses and digits runs
  removed (no personal data: a participant's name or e-mail can sit in a
  value an error quotes).

A consumer is **stuck** (``/readyz`` answers 503 naming it) while it fails,
or while it stays behind the head of the log without moving for
:data:`STALL_SECONDS` (also what a dead worker process looks like).  A row is
kept after its process ends: a worker that is not running while events pile
up is stuck too.  Writing never stops a follower: a failed write is logged
and the next one tries again.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import psycopg

from ledger.database import connect

if TYPE_CHECKING:
    from ledger.database import Database

log = logging.getLogger(__name__)

#: Seconds: the shortest interval between two writes of a healthy consumer's position.
WRITE_INTERVAL = 1.0
#: Seconds a consumer may stay behind the head without moving before it counts as stuck.
STALL_SECONDS = 60.0
#: Characters of an error message kept.
MAX_MESSAGE = 200
#: Seconds to connect, and for one write, before it is given up (the follower goes on).
WRITE_TIMEOUT = 5

_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|«[^»]*»")
_EMAIL = re.compile(r"[^\s@]+@[^\s@]+")
_DIGITS = re.compile(r"\d{5,}")


def error_class(error: BaseException) -> str:
    return type(error).__name__


def safe_message(error: BaseException) -> str:
    """The first line of ``error``'s message without the values it quotes
    (personal data can hide there), at most :data:`MAX_MESSAGE` characters."""
    if isinstance(error, KeyError):
        return ""  # its message is the missing key itself: data, not a description
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    text = _DIGITS.sub("…", _EMAIL.sub("<e-mail>", _QUOTED.sub("'…'", text)))
    return text[:MAX_MESSAGE]


@dataclass(frozen=True)
class FollowerHealth:
    """A follower's health in its own process (``LogFollower.health``; safe to
    read from any thread), and what :class:`HealthWriter` writes for the others."""

    #: The position the consumer last reported (None before the first ``resume``).
    position: int | None = None
    #: Consecutive failed attempts; 0 once an attempt gets past the failing batch.
    failures: int = 0
    #: While failing: the failing batch starts right after this position (None
    #: if the failure came before the consumer's position was known).
    failing_after: int | None = None
    #: The latest failure as ``Type: message`` (kept after recovery, for diagnosis).
    last_error: str | None = None
    #: Another process holds the consumer's job (see ``ledger.log_follower.Standby``).
    standing_by: bool = False
    #: While failing: when the first failure of this streak happened (UTC).
    failing_since: datetime | None = None
    #: While failing, if the consumer named it (``log_follower.EventFailed``): the event's position and type.
    failing_event: int | None = None
    event_type: str | None = None
    #: While failing: the error's class (the cause's, for ``EventFailed``) and its
    #: message without quoted values (``consumer_health.safe_message``: no personal data).
    error_class: str | None = None
    error: str | None = None

    @property
    def failing(self) -> bool:
        return self.failures > 0


@dataclass(frozen=True)
class ConsumerHealth:
    """One row of ``consumer_health``."""

    name: str
    position: int | None
    moved_at: datetime
    failures: int
    failing_since: datetime | None
    failing_after: int | None
    failing_event: int | None
    event_type: str | None
    error_class: str | None
    error: str | None
    updated_at: datetime

    def state(self, head: int, now: datetime) -> str:
        """``failing``, ``lagging`` (behind and not moving) or ``ok``."""
        if self.failures:
            return "failing"
        behind = self.position is not None and self.position < head
        if behind and (now - self.moved_at).total_seconds() > STALL_SECONDS:
            return "lagging"
        return "ok"

    def as_dict(self, head: int, now: datetime) -> dict[str, Any]:
        """What ``/readyz`` and ``ledger status`` show (times as RFC 3339)."""
        lag = max(0, head - self.position) if self.position is not None else None
        return {
            "name": self.name, "state": self.state(head, now), "position": self.position, "lag": lag,
            "moved_at": self.moved_at.isoformat(), "failures": self.failures,
            "failing_since": self.failing_since.isoformat() if self.failing_since else None,
            "failing_after": self.failing_after, "failing_event": self.failing_event,
            "event_type": self.event_type, "error_class": self.error_class, "error": self.error,
        }


_COLUMNS = ("name, position, moved_at, failures, failing_since, failing_after, failing_event, event_type, "
            "error_class, error, updated_at")


def read(db: Database) -> list[ConsumerHealth]:
    """Every consumer's last report, by name."""
    with db.transaction() as conn:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM consumer_health ORDER BY name").fetchall()
    return [ConsumerHealth(*row) for row in rows]


def now() -> datetime:
    return datetime.now(UTC)


_UPSERT = """
INSERT INTO consumer_health (name, position, moved_at, failures, failing_since, failing_after, failing_event,
                             event_type, error_class, error, updated_at)
VALUES (%(name)s, %(position)s, now(), %(failures)s, %(failing_since)s, %(failing_after)s, %(failing_event)s,
        %(event_type)s, %(error_class)s, %(error)s, now())
ON CONFLICT (name) DO UPDATE SET
  moved_at = CASE WHEN consumer_health.position IS DISTINCT FROM EXCLUDED.position
                  THEN now() ELSE consumer_health.moved_at END,
  position = EXCLUDED.position, failures = EXCLUDED.failures, failing_since = EXCLUDED.failing_since,
  failing_after = EXCLUDED.failing_after, failing_event = EXCLUDED.failing_event,
  event_type = EXCLUDED.event_type, error_class = EXCLUDED.error_class, error = EXCLUDED.error,
  updated_at = now()
"""


class HealthWriter:
    """Writes one follower's health (module docstring), on a connection of its
    own opened when first needed: never inside, nor waiting on, the
    consumer's transactions."""

    def __init__(self, database_url: str, name: str, *, interval: float = WRITE_INTERVAL) -> None:
        self.database_url, self.name, self.interval = database_url, name, interval
        self._conn: psycopg.Connection[Any] | None = None
        self._written: tuple[Any, ...] | None = None  # what the row holds, as far as we know
        self._at = 0.0  # monotonic time of the last write
        self._warned = False

    def report(self, health: FollowerHealth, *, now: float | None = None) -> bool:
        """Write ``health`` if it changed -- at once when it changed between
        healthy and failing (or the error changed), else at most once per
        ``interval``.  Returns whether it wrote."""
        values = (health.position, health.failures, health.failing_after, health.failing_event,
                  health.error_class)
        if values == self._written:
            return False
        was = self._written
        urgent = was is None or (health.failures > 0) != (was[1] > 0) or values[3:] != was[3:]
        clock = time.monotonic() if now is None else now
        if not urgent and clock - self._at < self.interval:
            return False
        try:
            conn = self._connection()
            conn.execute(_UPSERT, {
                "name": self.name, "position": health.position, "failures": health.failures,
                "failing_since": health.failing_since, "failing_after": health.failing_after,
                "failing_event": health.failing_event, "event_type": health.event_type,
                "error_class": health.error_class, "error": health.error,
            })
        except Exception as exc:  # never stop the follower over its report
            self.close()
            if not self._warned:
                log.warning("%s: could not write its health (%s); will try again", self.name, type(exc).__name__)
                self._warned = True
            return False
        self._written, self._at, self._warned = values, clock, False
        return True

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            # ledger.database.connect: with the project's session timeouts (lock_timeout …).
            self._conn = connect(self.database_url, autocommit=True, connect_timeout=WRITE_TIMEOUT)
            self._conn.execute(f"SET statement_timeout = '{WRITE_TIMEOUT}s'")
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None
