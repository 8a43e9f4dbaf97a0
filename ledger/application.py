"""The event store: an ``eventsourcing`` Application over PostgreSQL.

Kept apart from the command service so that workers and projections can open
the same store (to read the notification log) without the command machinery.
"""

from __future__ import annotations

import json
import logging
import struct
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, cast
from uuid import UUID

import psycopg
import psycopg.errors
from eventsourcing.application import Application, ProcessingEvent, Recording, Repository
from eventsourcing.domain import Aggregate, DomainEventProtocol, MutableOrImmutableAggregate
from eventsourcing.persistence import (
    Cipher,
    Compressor,
    DatabaseError,
    DataError,
    IntegrityError,
    InterfaceError,
    InternalError,
    Mapper,
    MapperDeserialisationError,
    NotSupportedError,
    OperationalError,
    PersistenceError,
    ProgrammingError,
    StoredEvent,
    Transcoder,
)
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.utils import get_topic, resolve_topic, retry
from psycopg import ClientCursor, pq
from psycopg.adapt import Dumper
from psycopg.sql import SQL, Composable, Identifier

from ledger.actor import current_actor
from ledger.aggregate_cache import LedgerRepository, plain_aggregate
from ledger.domain.organizer import Organizer
from ledger.domain.paid_event import PaidEvent
from ledger.handover import settle_unsettled, sleeping_lock, wake
from ledger.personal_data import PERSONAL_FIELDS, Keyring, open_state, seal_state
from ledger.stored_state import StateEncoder

log = logging.getLogger(__name__)


class TransactionWrite(Protocol):
    """A row written by the recorder inside the transaction that inserts a
    save's events: an idempotency key's commit mark
    (``ledger.idempotency_store.CommitMark``) or an e-mail claim
    (``ledger.registration_emails.EmailClaim``).  A unique violation it raises
    fails the save as a conflict, so the command is run again."""

    def write(self, cursor: Any) -> None: ...

    def add_to(self, rows: SaveRows) -> None:
        """The same row, handed to the save function (``_insert_by_function``)."""


class SaveRows:
    """What one save writes beside its events, gathered for the database's
    save function (migration 0016, ``ledger_save_events``): the marks merged
    per idempotency key (successive ``||`` of their entries, as one UPDATE
    per mark did), the e-mail claims in the callers' order."""

    __slots__ = ("claims", "marks", "reads")

    def __init__(self) -> None:
        self.marks: dict[tuple[str, str], dict[str, Any]] = {}
        self.claims: list[tuple[str, bytes, str, str | None]] = []
        self.reads: dict[UUID, int] = {}

    def mark(self, credential: str, key: str, entry: str, version: Any) -> None:
        self.marks.setdefault((credential, key), {})[entry] = version

    def claim(self, event_id: str, email_digest: bytes, registration_id: str, replaces: str | None) -> None:
        self.claims.append((event_id, email_digest, registration_id, replaces))

    def read(self, aggregate_id: UUID, version: int) -> None:
        """One check per aggregate: the oldest version read (every sale of a
        group commit reads the same organizer, almost always at one version)."""
        known = self.reads.get(aggregate_id)
        if known is None or version < known:
            self.reads[aggregate_id] = version


class ReadCheck:
    """A save decided on ``aggregate_id`` at ``version`` without writing to
    it -- a sale reads its organizer's plan size (R9).  The save function
    (migration 0017) refuses the whole save as a conflict when the aggregate
    has a newer event, checked under the events table's lock, so the caller
    decides again on a fresh read.  What lets a sale decide on a cached
    organizer without asking the database first whether it moved
    (``ledger.aggregate_cache``, "Trusted reads").

    On the recorder's other paths (a save too large for the function, one
    with a tracking record) the check is a query before the lock, among the
    other rows: a change committed in between is not seen, as with a read
    just before the save.  Only sales that trusted the cache make these, and
    they do only where the save function is used."""

    __slots__ = ("aggregate_id", "version")

    def __init__(self, aggregate_id: UUID, version: int) -> None:
        self.aggregate_id, self.version = aggregate_id, version

    def write(self, cursor: Any) -> None:
        cursor.execute(
            "SELECT 1 FROM ledger_events WHERE originator_id = %s AND originator_version > %s LIMIT 1",
            (self.aggregate_id, self.version), prepare=False,
        )
        if cursor.fetchone() is not None:
            raise IntegrityError("an aggregate this save was decided on has changed since it was read")

    def add_to(self, rows: SaveRows) -> None:
        rows.read(self.aggregate_id, self.version)


# --- binary array parameters of the save function ------------------------------------
# PostgreSQL's binary array format, built here with ``struct`` and ``bytes.join``:
# psycopg's list dumpers inspect and dump each element in Python, and its
# client-side quoting hex-encodes every state; the server then only copies
# the bytes (no hex decoding, no parsing of literals).

_ARRAY_HEAD = struct.Struct(">iiIii")  # one dimension: ndim, has nulls, element oid, length, lower bound
_EMPTY_HEAD = struct.Struct(">iiI")
_LENGTH = struct.Struct(">i")
_INT8 = struct.Struct(">iq")  # length 8, the value
_UUID_LENGTH = _LENGTH.pack(16)
_NULL = _LENGTH.pack(-1)


class _ArrayParameter(bytes):
    """A parameter already in PostgreSQL's binary array form (the subclass says its type)."""


class _UuidArray(_ArrayParameter):
    element = 2950


class _ByteaArray(_ArrayParameter):
    element = 17


class _Int8Array(_ArrayParameter):
    element = 20


class _TextArray(_ArrayParameter):
    element = 25


class _JsonbArray(_ArrayParameter):
    element = 3802


for _array, _array_oid in ((_UuidArray, 2951), (_ByteaArray, 1001), (_Int8Array, 1016), (_TextArray, 1009),
                           (_JsonbArray, 3807)):
    # Registered on psycopg's global map: every connection made after this
    # import (the recorder's pool is made by this module's store) has them.
    psycopg.adapters.register_dumper(_array, type(f"{_array.__name__}Dumper", (Dumper,), {
        "format": pq.Format.BINARY, "oid": _array_oid, "dump": lambda self, obj: obj}))


def _array_of(kind: type[_ArrayParameter], elements: Sequence[bytes | None]) -> Any:
    """``elements`` (each already length-prefixed, or ``None`` for NULL) as one array parameter."""
    if not elements:
        return kind(_EMPTY_HEAD.pack(0, 0, kind.element))  # type: ignore[attr-defined]
    has_null = None in elements
    head = _ARRAY_HEAD.pack(1, has_null, kind.element, len(elements), 1)  # type: ignore[attr-defined]
    return kind(head + b"".join([_NULL if e is None else e for e in elements]))


_NO_MARKS = (_array_of(_TextArray, []), _array_of(_TextArray, []), _array_of(_JsonbArray, []))
#: The save function's statement: its name on each connection, its parameters' types
#: (text[] ×2, jsonb[], uuid[], bytea[], uuid[] ×4, bytea[], uuid[], bigint[], text[], bytea[]).
_SAVE_NAME = b"ledger_save_events_v17"
_SAVE_TYPES = [1009, 1009, 3807, 2951, 1001, 2951, 2951, 2951, 1001, 2951, 1016, 1009, 1001, 2951, 1016, 20]
#: More moved events than this since a process's last save: "anything may have moved".
MOVES_LIMIT = 1000
#: An aggregate's first event's version (the library's ``INITIAL_VERSION``).
_FIRST_VERSION = 1
#: Seconds without a save after which a process trusts nothing it knew (``LedgerRecorder.moves_recent``).
MOVES_MAX_AGE = 2.0
_NO_UUIDS = _array_of(_UuidArray, [])
_NO_BYTEAS = _array_of(_ByteaArray, [])


def _uuid_array(raws: Sequence[bytes]) -> Any:
    """A uuid array without NULLs from the values' 16 bytes: every element
    has the same length prefix, so the elements are joined with it."""
    if not raws:
        return _NO_UUIDS
    return _UuidArray(_ARRAY_HEAD.pack(1, 0, 2950, len(raws), 1) + _UUID_LENGTH + _UUID_LENGTH.join(raws))


def _sized_array(kind: type[_ArrayParameter], values: Sequence[bytes]) -> Any:
    """A bytea or text array without NULLs: each value after its length."""
    if not values:
        return kind(_EMPTY_HEAD.pack(0, 0, kind.element))  # type: ignore[attr-defined]
    pack = _LENGTH.pack
    return kind(_ARRAY_HEAD.pack(1, 0, kind.element, len(values), 1)  # type: ignore[attr-defined]
                + b"".join([pack(len(value)) + value for value in values]))


def _int8_array(values: Sequence[int]) -> Any:
    """A bigint array without NULLs."""
    if not values:
        return _array_of(_Int8Array, [])
    pack = _INT8.pack
    return _Int8Array(_ARRAY_HEAD.pack(1, 0, _Int8Array.element, len(values), 1)
                      + b"".join([pack(8, value) for value in values]))


def _sized(value: bytes) -> bytes:
    return _LENGTH.pack(len(value)) + value


def _uuid(value: UUID | str) -> bytes:
    """A uuid element (its 16 bytes, length-prefixed), from a UUID or its text."""
    return _UUID_LENGTH + _uuid_bytes(value)


def _uuid_bytes(value: UUID | str) -> bytes:
    """The 16 bytes of a UUID or of its text."""
    if type(value) is UUID:
        return value.bytes
    try:
        raw = bytes.fromhex(str(value).replace("-", ""))
    except ValueError:
        raw = b""
    return raw if len(raw) == 16 else UUID(str(value)).bytes  # other spellings UUID() accepts


def _rendered(statement: Any) -> Any:
    """A composed statement as the bytes ``execute`` would render it to
    (identifiers quoted without a connection: they are plain ASCII names)."""
    return statement.as_bytes(None) if isinstance(statement, Composable) else statement


_UUID_OID = 2950
_INT8_OID = 20


def _check(conn: Any, result: Any, expected: pq.ExecStatus) -> Any:
    """A libpq result that is what was asked for, else its error raised as
    psycopg raises it (a lost connection: ``OperationalError``, which
    ``get_connection`` maps for the library's retry, and the pool then
    discards the broken connection)."""
    if result.status == expected:
        return result
    if conn.pgconn.status == pq.ConnStatus.BAD:
        raise psycopg.OperationalError(conn.pgconn.error_message.decode(errors="replace") or "connection lost")
    raise psycopg.errors.error_from_result(result, encoding=conn.info.encoding)


def _as_library_error(exc: psycopg.Error) -> Exception:
    """A psycopg error as the library's ``get_connection`` raises it."""
    for theirs, ours in ((psycopg.InterfaceError, InterfaceError), (psycopg.OperationalError, OperationalError),
                         (psycopg.DataError, DataError), (psycopg.IntegrityError, IntegrityError),
                         (psycopg.InternalError, InternalError), (psycopg.ProgrammingError, ProgrammingError),
                         (psycopg.NotSupportedError, NotSupportedError), (psycopg.DatabaseError, DatabaseError)):
        if isinstance(exc, theirs):
            return ours(str(exc))
    return PersistenceError(str(exc))


def _stored_event(row: Any) -> StoredEvent:
    """A row of the events table (read as a dict) as the library's record."""
    return StoredEvent(originator_id=row["originator_id"], originator_version=row["originator_version"],
                       topic=row["topic"], state=bytes(row["state"]))


@dataclass(eq=False)
class _Pending:
    """One caller's save waiting for a group commit.

    ``wake`` is the caller's own lock, taken when it queues: the caller sleeps
    on it, and the group's leader releases it once -- when the caller's save
    is done, or to hand it the lead (it is then the queue's first) -- so a
    finished group wakes its own callers and the next leader, never the
    callers still queued behind (a shared condition's ``notify_all`` woke
    every one of them, each to take the condition's lock and sleep again:
    a futex round and a GIL hand-over per sleeper and per commit)."""

    events: Sequence[StoredEvent]
    marks: Sequence[TransactionWrite] = ()
    ids: Sequence[int] | None = None
    error: BaseException | None = None
    done: bool = False
    wake: Any = field(default_factory=sleeping_lock)


class LedgerRecorder(PostgresApplicationRecorder):
    """The library's recorder with group commit, and without pipeline mode for
    very large saves.

    Group commit: every insert takes the table's EXCLUSIVE lock until commit
    (that is what keeps the notification log in commit order), so concurrent
    saves queue up behind each other one commit at a time.  Here, saves that
    arrive while a commit is in flight wait for it and are then written
    *together* by one of them, in one transaction: one lock, one commit, one
    fsync for many commands.  Each caller's events stay atomic (they share the
    transaction) and each caller returns only after the commit.  If the combined
    write conflicts (an aggregate version taken), the group is written again one
    caller at a time, so exactly the conflicting callers get the conflict.
    When a group is done, its leader hands the lead to the first caller queued
    since (who writes the next group) and wakes the group's callers -- each
    waiting caller is woken once, by its own lock (:class:`_Pending`).

    Large saves (cancelling an event with thousands of registrations) skip the
    pipeline: ~1,500+ pipelined events deadlock psycopg while the lock is held.

    Idempotency marks: ``save(..., idempotency_marks=[CommitMark…])`` (or any
    :class:`TransactionWrite`, e.g. an e-mail claim) records
    each mark on its ``idempotency_keys`` row *in the transaction that inserts
    the caller's events* (``ledger.idempotency_store``): in a group commit every
    caller's marks go into the shared transaction, and when the group falls back
    to one caller at a time each caller's marks go with its own events.
    """

    PIPELINE_LIMIT = 500
    GROUP_LIMIT = 400  # events per group commit, kept under PIPELINE_LIMIT

    #: Set by ``LedgerStore.use_keyring``: new registrations' data keys are
    #: inserted in their first event's transaction (``ledger.personal_data``).
    keyring: Keyring | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._group_lock = threading.Lock()  # the queue and the leader flag
        self._group_queue: list[_Pending] = []
        self._group_leader = False  # a caller is committing a group (true whenever the queue is not empty)
        self.group_wakeups = 0  # callers woken by a leader (each waiting caller exactly once)
        # The library composes its statements with ``psycopg.sql`` on every
        # call (and every ``execute`` renders them to bytes again: ~9 % of a
        # registration's CPU).  They never change: render them once.
        self.insert_events_statement = _rendered(self.insert_events_statement)
        self._lock_statements: list[bytes] = [_rendered(statement) for statement in self.lock_table_statements]
        self.lock_table_statements = list(self._lock_statements)
        self._notify_statement: bytes = _rendered(SQL("NOTIFY {0}").format(Identifier(self.channel_name)))
        self._table = _rendered(SQL("{0}.{1}").format(Identifier(self.datastore.schema),
                                                          Identifier(self.events_table_name))).decode()
        self._select_statements: dict[tuple[bool, bool, bool, bool], bytes] = {}
        self._save_statement = (
            f"SELECT * FROM ledger_save_events('{int(self.datastore.lock_timeout)}s', "
            + ", ".join(f"${i + 1}" for i in range(len(_SAVE_TYPES))) + ")").encode()
        self._save_function: bool | None = None  # known on the first save (_use_save_function)
        # The pooled connections the save function's statement is prepared on.
        self._prepared_save: weakref.WeakSet[Any] = weakref.WeakSet()
        # The names ``select_events_after`` prepared on each pooled connection.
        self._prepared_after: weakref.WeakKeyDictionary[Any, set[bytes]] = weakref.WeakKeyDictionary()
        #: What moved since this process's saves began reporting it (see :meth:`track_moves`).
        self._seen_after: int | None = None
        self._reported_at = 0.0  # time.monotonic() of the last report
        self.on_moves: Callable[[list[StoredEvent] | None], None] | None = None
        #: Told of this process's own committed events (no report lists them).
        self.on_written: Callable[[Sequence[StoredEvent]], None] | None = None

    def _notify_channel(self, curs: Any) -> None:
        """The library's NOTIFY, rendered once and never prepared (see ``_insert_committed``)."""
        curs.execute(self._notify_statement, prepare=False)

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def select_events(
        self, originator_id: UUID | str, *, gt: int | None = None, lte: int | None = None,
        desc: bool = False, limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        """The library's ``select_events`` with its statement rendered once per
        shape instead of composed on every call; same rows, same order."""
        shape = (gt is not None, lte is not None, desc, limit is not None)
        statement = self._select_statements.get(shape)
        if statement is None:
            text = f"SELECT * FROM {self._table} WHERE originator_id = %s"
            text += " AND originator_version > %s" if shape[0] else ""
            text += " AND originator_version <= %s" if shape[1] else ""
            text += " ORDER BY originator_version" + (" DESC" if desc else " ASC")
            text += " LIMIT %s" if shape[3] else ""
            statement = self._select_statements[shape] = text.encode()
        params = [originator_id, *(v for v in (gt, lte, limit) if v is not None)]
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, params, prepare=True)
            return [_stored_event(row) for row in curs.fetchall()]

    def recorded_ids(self, originator_ids: Sequence[UUID]) -> set[UUID]:
        """Which of these aggregates have a stored event: after a batch of
        sales conflicted, whose ids a committed change already holds
        (``ledger.sales_batch``), in one query."""
        if not originator_ids:
            return set()
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(f"SELECT DISTINCT originator_id FROM {self._table} WHERE originator_id = ANY(%s)",
                         (list(originator_ids),), prepare=False)
            return {row["originator_id"] for row in curs.fetchall()}

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def select_events_after(self, versions: Sequence[tuple[UUID, int]]) -> list[StoredEvent]:
        """Every stored event of each ``(originator_id, version)`` pair newer
        than that version, in ONE query (one statement snapshot): what the
        aggregate cache needs to fast-forward several cached aggregates
        (``LedgerRepository.get_with``) in one round trip instead of one each.
        Ordered by originator id, then version.

        Every sale runs it (the event and its organizer's plan, as current as
        the database: R9 across processes), and almost always it finds
        nothing.  psycopg's cursor -- adapters, the prepared-statement cache,
        the dict rows -- cost twice the round trip's own CPU, so it is sent
        through the connection's libpq handle directly: a statement prepared
        once per connection under a fixed name (again when psycopg has
        deallocated every statement of the session, which it does after a
        ROLLBACK), binary parameters and results.  Same query, same snapshot,
        same rows.  The connection is taken from the pool and given back
        directly (the checkout's two context managers cost as much again),
        its errors raised as the library's checkout raises them (a lost
        connection is retried)."""
        if not versions:
            return []
        count = len(versions)
        params: list[bytes] = []
        known: dict[bytes, UUID] = {}
        for originator_id, version in versions:
            raw = originator_id.bytes  # a property computing the bytes: once per id
            known[raw] = originator_id
            params += (raw, version.to_bytes(8, "big", signed=True))
        pool = self.datastore.pool
        if pool.closed:  # not opened yet: the library's checkout opens it
            with self.datastore.get_connection():
                pass
        try:
            conn = pool.getconn()
        except psycopg.Error as exc:
            raise _as_library_error(exc) from exc
        try:
            with conn.lock:
                return self._select_after(conn, count, params, known)
        except psycopg.Error as exc:
            raise _as_library_error(exc) from exc
        finally:
            pool.putconn(conn)  # a broken connection is discarded by the pool

    def _select_after(self, conn: Any, count: int, params: list[bytes], known: dict[bytes, UUID]) -> list[StoredEvent]:
        """``select_events_after``'s statement for ``count`` pairs on ``conn``."""
        name = b"ledger_events_after_%d" % count
        pgconn = conn.pgconn
        prepared = self._prepared_after.setdefault(conn, set())
        for _ in range(2):
            if name not in prepared:
                where = " OR ".join(
                    f"(originator_id = ${2 * i + 1} AND originator_version > ${2 * i + 2})" for i in range(count)
                )
                statement = (f"SELECT originator_id, originator_version, topic, state FROM {self._table}"
                             f" WHERE {where} ORDER BY originator_id, originator_version").encode()
                _check(conn, pgconn.prepare(name, statement, [_UUID_OID, _INT8_OID] * count),
                       pq.ExecStatus.COMMAND_OK)
                prepared.add(name)
            result = pgconn.exec_prepared(name, params, [1] * len(params), 1)
            if result.status != pq.ExecStatus.TUPLES_OK and result.error_field(
                pq.DiagnosticField.SQLSTATE
            ) == b"26000":  # psycopg sends DEALLOCATE ALL when it sees a ROLLBACK: prepare again
                prepared.clear()
                continue
            break
        _check(conn, result, pq.ExecStatus.TUPLES_OK)
        events = []
        for row in range(result.ntuples):
            raw_id = cast(bytes, result.get_value(row, 0))
            events.append(StoredEvent(
                originator_id=known.get(raw_id) or UUID(bytes=raw_id),
                originator_version=int.from_bytes(cast(bytes, result.get_value(row, 1)), "big", signed=True),
                topic=cast(bytes, result.get_value(row, 2)).decode(),
                state=bytes(cast(bytes, result.get_value(row, 3))),
            ))
        return events

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        marks = tuple(kwargs.pop("idempotency_marks", None) or ())
        if any(v is not None for v in kwargs.values()) or len(stored_events) > self.GROUP_LIMIT:
            try:
                return self._insert_now(stored_events, marks=marks, **kwargs)  # e.g. with a tracking record
            except BaseException:
                self._abandon_keys(stored_events)
                raise
        mine = _Pending(stored_events, marks)
        with self._group_lock:
            self._group_queue.append(mine)
            leading = not self._group_leader
            self._group_leader = True
        if not leading:
            mine.wake.acquire()  # until a leader says: done, or lead (then ``mine`` is the queue's first)
        while not mine.done:
            with self._group_lock:
                group = self._take_group()  # the queue's first is always taken: ``mine``
            try:
                self._commit_group(group)
            finally:
                self._hand_over(group, mine)
        if mine.error is not None:
            self._abandon_keys(stored_events)
            raise mine.error
        return mine.ids

    def _abandon_keys(self, stored_events: Sequence[StoredEvent]) -> None:
        """The caller's events were not stored (a conflict, an outage): forget
        the new data keys they were sealed with (R24).  A pending key is what
        reads of that registration use first; left behind, it would shadow the
        key another writer committed for the same id (two requests creating
        one derived id), and its personal data would no longer open."""
        if self.keyring is not None:
            self.keyring.discard(e.originator_id for e in stored_events)

    def _hand_over(self, group: list[_Pending], mine: _Pending) -> None:
        """After ``group``'s commit: the lead to the queue's first caller (if
        any; else no leader), then wake the group's other callers, whose
        saves are done -- and no one else.  The next commit starts before
        the finished callers compete for the GIL to answer."""
        settle_unsettled(group, "the group commit did not settle this save")  # ``_commit_group`` settles each
        woken = [pending for pending in group if pending is not mine]
        with self._group_lock:
            following = self._group_queue[0] if self._group_queue else None
            self._group_leader = following is not None
            self.group_wakeups += len(woken) + (following is not None)
        wake(following, woken)

    def _take_group(self) -> list[_Pending]:
        """Queued saves up to GROUP_LIMIT events (always at least one)."""
        group: list[_Pending] = []
        size = 0
        while self._group_queue and (not group or size + len(self._group_queue[0].events) <= self.GROUP_LIMIT):
            pending = self._group_queue.pop(0)
            group.append(pending)
            size += len(pending.events)
        return group

    def _commit_group(self, group: list[_Pending]) -> None:
        try:
            if len(group) == 1:
                self._settle(group[0])
                return
            combined = [event for pending in group for event in pending.events]
            marks = [mark for pending in group for mark in pending.marks]
            try:
                ids = self._insert_now(combined, marks=marks)
            except IntegrityError:
                for pending in group:  # find exactly who conflicts
                    self._settle(pending)
                return
            offset = 0
            for pending in group:
                count = len(pending.events)
                pending.ids = list(ids[offset:offset + count]) if ids is not None else None
                pending.done, offset = True, offset + count
        except BaseException as exc:  # the whole group failed (e.g. database down)
            for pending in group:
                if not pending.done:
                    pending.error, pending.done = exc, True

    def _settle(self, pending: _Pending) -> None:
        try:
            pending.ids = self._insert_now(pending.events, marks=pending.marks)
        except Exception as exc:
            pending.error = exc
        pending.done = True

    def _insert_now(
        self, stored_events: Sequence[StoredEvent], marks: Sequence[TransactionWrite] = (), **kwargs: Any
    ) -> Sequence[int] | None:
        ids = self._insert_committed(stored_events, marks, **kwargs)
        if self.keyring is not None:
            self.keyring.committed(e.originator_id for e in stored_events)
        if self.on_written is not None:
            self.on_written(stored_events)
        return ids

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)  # as the library's insert_events
    def _insert_committed(
        self, stored_events: Sequence[StoredEvent], marks: Sequence[TransactionWrite], **kwargs: Any
    ) -> Sequence[int] | None:
        """One transaction: the marks and data keys, the table lock, NOTIFY,
        the events.  An ordinary save is one call of the database's save
        function (``_insert_by_function``; on a database before migration 16,
        one simple query: ``_insert_in_one_statement``); one with the library's extra arguments
        (a tracking record) is pipelined; a large one goes statement by
        statement.

        Prepared statements (the pipelined and large paths): psycopg prepares a statement on its sixth use and,
        in a pipeline, records the name before the server answers; when an
        earlier statement of the pipeline fails (a claimed address, a taken
        version), the server skips that prepare but the name can stay cached,
        and every later use of the statement on that connection fails with
        "prepared statement _pg3_n does not exist" (seen once under a load of
        racing duplicate registrations).  So every statement here says whether
        it is prepared (never left to the threshold), and a connection whose
        pipelined save failed is closed rather than reused with a cache that
        may be stale."""
        # The library's database-function path would drop the marks and keys: never with them.
        pipelined = len(stored_events) <= self.PIPELINE_LIMIT and not self.datastore.enable_db_functions
        if pipelined and not any(value is not None for value in kwargs.values()):
            if self._save_function or (self._save_function is None and self._use_save_function()):
                return self._insert_by_function(stored_events, marks)  # every ordinary save
            return self._insert_in_one_statement(stored_events, marks)  # a database before migration 16
        with self.datastore.get_connection() as conn:
            if not pipelined:
                with conn.transaction(), conn.cursor() as curs:
                    self._insert_events(curs, stored_events, idempotency_marks=marks, **kwargs)
                    self._insert_stored_events(curs, stored_events, **kwargs)
                    return self._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
            failure: Exception | None = None
            ids: Sequence[int] | None = None
            with conn.pipeline() as pipeline, conn.transaction():
                with conn.cursor() as curs:
                    self._insert_events(curs, stored_events, idempotency_marks=marks, **kwargs)
                with conn.cursor() as curs:
                    try:
                        self._insert_stored_events(curs, stored_events, **kwargs)
                        pipeline.sync()  # a unique violation raises here, not at commit
                        ids = self._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
                    except Exception as exc:  # raised after the pipeline has closed (no psycopg warning)
                        failure = exc
            if failure is not None:
                conn.close()  # the pool replaces it; its statement cache may name statements never prepared
                raise failure
            return ids

    def _insert_stored_events(self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        """The library's lock, NOTIFY and insert, with the insert always prepared
        (the library leaves it to psycopg's threshold; see ``_insert_committed``)."""
        self._lock_table(curs)  # the library prepares these explicitly
        self._notify_channel(curs)
        rows = [self.construct_pg_stored_event(e.originator_id, e.originator_version, e.topic, e.state)
                for e in stored_events]
        curs.execute(self.insert_events_statement, (rows,), prepare=True)

    def moves_recent(self) -> bool:
        """Whether a save reported what moved a moment ago: a process that
        has not saved for a while (``MOVES_MAX_AGE``) knows nothing of what
        others committed meanwhile, so its sales read first."""
        return self._seen_after is not None and time.monotonic() - self._reported_at <= MOVES_MAX_AGE

    def track_moves(self) -> bool:
        """Start (once) having every save report the events other writers
        committed since this process's previous save (``on_moves``): from
        the log's current end, so every commit after this call is reported
        by some later save of this process.  ``False`` where saves do not go
        through the save function (then nothing is reported)."""
        if self._seen_after is not None:
            return True
        if not (self._save_function or (self._save_function is None and self._use_save_function())):
            return False
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(f"SELECT coalesce(max(notification_id), 0) AS top FROM {self._table}", prepare=False)
            row = curs.fetchone()
        if self._seen_after is None:
            self._seen_after = int(row["top"]) if row else 0
            self._reported_at = time.monotonic()
        return True

    def _use_save_function(self) -> bool:
        """Whether ordinary saves call the database's save function (migration
        16): only for the ledger's own table and channel, when no subclass adds
        statements through the ``_insert_events`` hook (the function runs only
        the marks, claims and keys), and when the function exists -- a bare
        store on a database not migrated (the migration tests' first-release
        database) saves by the one simple query instead; and when the session
        speaks UTF-8 (the texts in the arrays are its bytes).  Asked once."""
        usable = (self._table == '"public"."ledger_events"' and self.channel_name == "ledger_events"
                  and type(self)._insert_events is LedgerRecorder._insert_events)
        if usable:
            with self.datastore.get_connection() as conn, conn.cursor() as curs:
                curs.execute("SELECT to_regprocedure('public.ledger_save_events(text, text[], text[], jsonb[],"
                             " uuid[], bytea[], uuid[], uuid[], uuid[], bytea[], uuid[], bigint[], text[],"
                             " bytea[], uuid[], bigint[], bigint)') IS NOT NULL"
                             " AND current_setting('client_encoding') = 'UTF8' AS usable",
                             prepare=False)  # texts are sent as UTF-8 bytes
                row = curs.fetchone()
                usable = bool(row and row["usable"])
        self._save_function = usable
        return usable

    def _insert_by_function(self, stored_events: Sequence[StoredEvent], marks: Sequence[TransactionWrite]) -> list[int]:
        """The whole save as ONE call of the database's save function
        (``ledger_save_events``, migration 16): the marks, the e-mail claims
        and the new data keys, then the table lock, NOTIFY and the events'
        insert, in the function's statements with plans the session keeps.

        Why: the one simple query it replaces (``_insert_in_one_statement``)
        had its eight statements parsed and planned on every save, and every
        value quoted into its text by psycopg (the states hex-encoded).  Here
        the statement text never changes: it is prepared once per session,
        and its fourteen parameters are arrays in PostgreSQL's binary form,
        built with ``struct``/``bytes.join`` (:func:`_array_of`; the arrays
        that never hold NULLs by :func:`_uuid_array`, :func:`_sized_array`
        and :func:`_int8_array`, with no per-element calls).  Still one
        round trip: the table's EXCLUSIVE lock is held for the server's own
        work and the commit only, never while this thread waits for the GIL.

        Same guarantees: one transaction (the one statement's implicit
        transaction, the connection being in autocommit: any error rolls back
        marks, claims, keys and events alike), the same lock before the
        insert (the log stays in commit order), NOTIFY delivered at commit,
        durable before this returns (the reply follows the commit's flush; the
        session must be idle -- committed -- after it), a unique violation (a
        version taken, an address claimed) raised as ``IntegrityError``.  Not
        pipelined, and called on the libpq handle (:meth:`_call_save_function`),
        outside psycopg's statement cache.  Retried by
        ``_insert_committed`` on a lost connection: a retry of a save that had
        committed fails on its taken versions, as the library's retry does."""
        rows = SaveRows()
        for mark in marks:
            mark.add_to(rows)
        keys = self.keyring.pending_rows(e.originator_id for e in stored_events) if self.keyring else []
        claims = rows.claims
        params = (
            *((_array_of(_TextArray, [_sized(credential.encode()) for credential, _ in rows.marks]),
               _array_of(_TextArray, [_sized(key.encode()) for _, key in rows.marks]),
               _array_of(_JsonbArray, [_sized(b"\x01" + json.dumps(entries).encode())
                                       for entries in rows.marks.values()]))
              if rows.marks else _NO_MARKS),  # most saves run under no idempotency key
            *((_uuid_array([_uuid_bytes(c[0]) for c in claims]),
               _sized_array(_ByteaArray, [c[1] for c in claims]),
               _uuid_array([_uuid_bytes(c[2]) for c in claims]),
               _array_of(_UuidArray, [None if c[3] is None else _uuid(c[3]) for c in claims]  # empty: no DELETE
                         if any(c[3] is not None for c in claims) else []))
              if claims else (_NO_UUIDS, _NO_BYTEAS, _NO_UUIDS, _NO_UUIDS)),
            _uuid_array([_uuid_bytes(rid) for rid, _ in keys]),
            _sized_array(_ByteaArray, [wrapped for _, wrapped in keys]),
            _uuid_array([_uuid_bytes(e.originator_id) for e in stored_events]),
            _int8_array([e.originator_version for e in stored_events]),
            _sized_array(_TextArray, [e.topic.encode() for e in stored_events]),
            _sized_array(_ByteaArray, [e.state for e in stored_events]),
            _uuid_array([aggregate_id.bytes for aggregate_id in rows.reads]),
            _int8_array(list(rows.reads.values())),
            None if (seen_after := self._seen_after_now()) is None else seen_after.to_bytes(8, "big", signed=True),
        )
        pool = self.datastore.pool
        if pool.closed:  # not opened yet: the library's checkout opens it
            with self.datastore.get_connection():
                pass
        try:
            conn = pool.getconn()
        except psycopg.Error as exc:
            raise _as_library_error(exc) from exc
        try:
            with conn.lock:
                result = self._call_save_function(conn, params)
        except psycopg.Error as exc:
            raise _as_library_error(exc) from exc
        finally:
            pool.putconn(conn)  # a broken connection is discarded by the pool, an open transaction rolled back
        ids: list[int] = []
        moves: list[StoredEvent] = []
        moved = 0
        get = result.get_value
        for row in range(result.ntuples):
            value = get(row, 0)
            if value is not None:
                ids.append(int.from_bytes(cast(bytes, value), "big", signed=True))
                continue
            moved += 1
            version = int.from_bytes(cast(bytes, get(row, 2)), "big", signed=True)
            if version == _FIRST_VERSION:
                continue  # an aggregate created: see ``_report_moves``
            moves.append(StoredEvent(
                originator_id=UUID(bytes=cast(bytes, get(row, 1))), originator_version=version,
                topic=cast(bytes, get(row, 3)).decode(), state=bytes(cast(bytes, get(row, 4)))))
        if len(ids) != len(stored_events):
            raise ProgrammingError(f"got {len(ids)} notification ids for {len(stored_events)} events")
        if seen_after is not None:
            self._report_moves(moves, ids, moved)
        elif self._seen_after is not None and ids:  # after a pause: report from this save on
            self._seen_after, self._reported_at = max(ids), time.monotonic()
        return ids

    def _seen_after_now(self) -> int | None:
        """Where this save's report starts; ``None`` (no report) when not
        tracking, or after a pause: then what this process knew is dropped
        (``on_moves(None)``) rather than a long report read under the lock."""
        seen_after = self._seen_after
        if seen_after is not None and time.monotonic() - self._reported_at > MOVES_MAX_AGE:
            if self.on_moves is not None:
                self.on_moves(None)
            return None
        return seen_after

    def _report_moves(self, moves: list[StoredEvent], ids: list[int], moved: int) -> None:
        """Hand what moved to ``on_moves`` (``None``: too much to list --
        ``moved`` counts every reported event), and move the start of the
        next report to this save's events: everything committed before them
        was just reported.  Threads race to move it; one moving it back only
        makes a later report overlap this one.

        ``moves`` leaves out the events that create an aggregate (the first
        version): no cache can hold an aggregate from before it existed, so
        none of them ever continues a cached one -- and they are half of what
        other processes commit (each registration is one), each an object
        built here and looked up there for nothing."""
        self._reported_at = time.monotonic()
        if self.on_moves is not None:
            self.on_moves(None if moved > MOVES_LIMIT else moves)
        if ids and (top := max(ids)) > (self._seen_after or 0):
            self._seen_after = top

    def _call_save_function(self, conn: Any, params: Sequence[bytes | None]) -> Any:
        """The save function's call on ``conn`` through its libpq handle: the
        statement prepared once per connection under a fixed name (again when
        psycopg has deallocated every statement of the session, which it does
        after a ROLLBACK), the arrays bound in binary, the ids read in binary.

        Why not psycopg's cursor: it adapts each of the thirteen parameters
        (already in their binary form), keeps its prepared-statement cache,
        builds its rows -- Python work per save that costs more than the
        call's own CPU.  The libpq call releases the GIL while it waits, as the
        cursor's wait does.  Its result is checked as psycopg checks it
        (an error raised as psycopg raises it), and the session must be idle
        -- committed -- after it."""
        pgconn = conn.pgconn
        for _ in range(2):
            if conn not in self._prepared_save:
                prepared = pgconn.prepare(_SAVE_NAME, self._save_statement, _SAVE_TYPES)
                if prepared.error_field(pq.DiagnosticField.SQLSTATE) != b"42P05":  # (already there: fine)
                    _check(conn, prepared, pq.ExecStatus.COMMAND_OK)
                self._prepared_save.add(conn)
            result = pgconn.exec_prepared(_SAVE_NAME, params, [1] * len(params), 1)
            if result.status != pq.ExecStatus.TUPLES_OK and result.error_field(
                pq.DiagnosticField.SQLSTATE
            ) == b"26000":  # deallocated (psycopg's DEALLOCATE ALL): prepare again
                self._prepared_save.discard(conn)
                continue
            break
        _check(conn, result, pq.ExecStatus.TUPLES_OK)
        if pgconn.transaction_status != pq.TransactionStatus.IDLE:
            raise OperationalError("the save did not commit on its own (was the session in a transaction?)")
        return result

    def _insert_in_one_statement(
        self, stored_events: Sequence[StoredEvent], marks: Sequence[TransactionWrite]
    ) -> list[int]:
        """The whole save -- the marks and data keys, the table lock, NOTIFY,
        the events' insert, COMMIT -- sent as ONE simple query (one round
        trip), values bound client-side by psycopg (``mogrify``, its quoting).

        Why: the library pipelines the same statements but needs a second
        round trip for the COMMIT, and between the two the table's EXCLUSIVE
        lock is held while this Python thread waits for the GIL (8 threads
        per process serving requests: up to a 5 ms switch interval each
        time).  Sent at once, PostgreSQL takes the lock, inserts, commits and
        releases it without waiting for the client: the lock is held only for
        the server's own work and the commit's WAL flush, so more commits fit
        through it per second.

        Same guarantees as the pipelined path: one transaction (explicit
        BEGIN … COMMIT; any error ends it before COMMIT, and the pool rolls
        the session back), the same lock before the insert (the log stays in
        commit order), durable before this returns (the COMMIT's reply comes
        after its flush, and the session must be idle -- committed -- after
        it), a unique violation (a version taken, an address claimed) raised
        as ``IntegrityError``.  Retried by the caller (``_insert_committed``)
        on a lost connection, as the library retries its insert."""
        collected = _CollectedStatements()
        self._insert_events(collected, stored_events, idempotency_marks=marks)
        with self.datastore.get_connection() as conn:
            binder = ClientCursor(conn)
            parts = [b"BEGIN"]
            parts += [binder.mogrify(query, params).encode() for query, params in collected.statements]
            if stored_events:  # as the library: no lock without events (marks alone)
                parts += [*self._lock_statements, self._notify_statement]
                rows = ",".join(["(%s,%s,%s,%s)"] * len(stored_events))
                parts.append(binder.mogrify(
                    f"INSERT INTO {self._table} (originator_id, originator_version, topic, state) VALUES {rows}"
                    " RETURNING notification_id",
                    [v for e in stored_events for v in (e.originator_id, e.originator_version, e.topic, e.state)],
                ).encode())
            parts.append(b"COMMIT")
            with conn.cursor() as curs:
                curs.execute(b";\n".join(parts), prepare=False)
                ids: list[int] = []
                while True:
                    if curs.pgresult is not None and curs.pgresult.status == pq.ExecStatus.TUPLES_OK:
                        ids = [row["notification_id"] for row in curs.fetchall()]
                    if not curs.nextset():
                        break
            if conn.info.transaction_status != pq.TransactionStatus.IDLE:
                raise OperationalError("the save's transaction did not end with its COMMIT")
            if len(ids) != len(stored_events):
                raise ProgrammingError(f"got {len(ids)} notification ids for {len(stored_events)} events")
            return ids

    def _insert_events(self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        """The library's hook inside the events' transaction, before their
        insert: record the callers' idempotency marks there."""
        super()._insert_events(curs, stored_events, **kwargs)
        for mark in kwargs.get("idempotency_marks") or ():
            mark.write(curs)
        keys = self.keyring.pending_rows(e.originator_id for e in stored_events) if self.keyring else []
        if keys:  # new registrations' data keys, atomically with their first events (R24)
            curs.executemany(
                "INSERT INTO personal_data_keys (registration_id, wrapped_key) VALUES (%s, %s)"
                " ON CONFLICT (registration_id) DO NOTHING", keys,
            )


class _CollectedStatements:
    """Stands in for a cursor to collect what the marks and data keys would
    execute, so that the recorder sends them with the events in one query."""

    def __init__(self) -> None:
        self.statements: list[tuple[Any, Any]] = []

    def execute(self, query: Any, params: Any = None, **_: Any) -> None:
        self.statements.append((query, params))

    def executemany(self, query: Any, params_seq: Any, **_: Any) -> None:
        self.statements.extend((query, params) for params in params_seq)


class _Collected(ProcessingEvent[UUID]):
    """The library's ``collect_events`` checks every object against two
    runtime-checkable Protocols (``isinstance`` on a Protocol walks its
    attributes: ~3 % of a registration's CPU).  Our aggregates are all
    ``Aggregate`` subclasses: a plain class check answers for them, anything
    else goes the library's way."""

    def collect_events(self, *objs: Any, **kwargs: Any) -> None:
        others = []
        for obj in objs:
            if isinstance(obj, Aggregate):
                self.events.extend(obj.collect_events())
                self.aggregates[obj.id] = obj
            elif obj is not None:
                others.append(obj)
        super().collect_events(*others, **kwargs)


class ActorMapper(Mapper[UUID]):
    """Stores the current actor (see ``ledger.actor``) with each new event, and
    seals participants' personal data (``ledger.personal_data``, R24).

    The ``actor`` key travels in the stored state beside the event's own fields;
    replaying ignores it (mutators take only their own parameters), and the
    event log lifts it into the envelope for auditors.

    Personal fields are sealed when the state is stored and opened when it is
    read, here, so the aggregates, the views, the workers and the API all read
    the same decoded form.  Without a keyring (a bare store, as in migration
    tests) events are stored in clear, as before sealing existed.
    """

    keyring: Keyring | None = None

    def __init__(self, transcoder: Transcoder, compressor: Compressor | None = None,
                 cipher: Cipher | None = None) -> None:
        super().__init__(transcoder, compressor=compressor, cipher=cipher)
        # The library's JSON bytes through orjson (``ledger.stored_state``).
        self._state_encoder = StateEncoder(transcoder)

    def to_stored_event(self, domain_event: DomainEventProtocol[UUID]) -> StoredEvent:
        """The library's ``Mapper.to_stored_event`` (the same steps, the same
        bytes), with the actor added, personal fields sealed, and the state
        encoded by :class:`~ledger.stored_state.StateEncoder`."""
        if "actor" not in vars(domain_event):
            object.__setattr__(domain_event, "actor", current_actor.get())
        cls = type(domain_event)
        event_state = dict(vars(domain_event))
        originator_id = event_state.pop("originator_id")
        originator_version = event_state.pop("originator_version")
        class_version = getattr(cls, "class_version", 1)
        if class_version > 1:
            event_state["class_version"] = class_version
        if self.keyring is not None and cls in PERSONAL_FIELDS:
            seal_state(event_state, cls, originator_id, originator_version, self.keyring)
        stored_state = self._state_encoder.encode(event_state)
        if self.compressor:
            stored_state = self.compressor.compress(stored_state)
        if self.cipher:
            stored_state = self.cipher.encrypt(stored_state)
        return StoredEvent(originator_id=originator_id, originator_version=originator_version,
                           topic=get_topic(cls), state=stored_state)

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[UUID]:
        cls = resolve_topic(stored_event.topic)
        if cls not in PERSONAL_FIELDS:
            return super().to_domain_event(stored_event)
        stored_state = stored_event.state
        try:
            if self.cipher:
                stored_state = self.cipher.decrypt(stored_state)
            if self.compressor:
                stored_state = self.compressor.decompress(stored_state)
            event_state: dict[str, Any] = self.transcoder.decode(stored_state)
        except Exception as exc:
            raise MapperDeserialisationError(
                f"Failed to deserialise state of stored event with topic {stored_event.topic!r}, originator_id "
                f"{stored_event.originator_id!r} and originator_version {stored_event.originator_version}: {exc}"
            ) from exc
        originator_id = stored_event.originator_id
        event_state["originator_id"] = originator_id if isinstance(originator_id, UUID) else UUID(str(originator_id))
        event_state["originator_version"] = stored_event.originator_version
        open_state(event_state, cls, originator_id, stored_event.originator_version, self.keyring)
        return upcast_and_build(cls, event_state)


class SnapshotWriter:
    """Stores snapshots (already encoded) from one thread of its own (the
    standard executor's, one worker: in the order they were taken).  A
    snapshot that cannot be stored is logged -- the aggregate is then read
    from its previous snapshot and its events, as without it."""

    def __init__(self, recorder: Any) -> None:
        self.recorder = recorder
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="snapshot-writer")

    def put(self, stored: StoredEvent) -> None:
        self._executor.submit(self._store, stored)

    def flush(self, timeout: float) -> bool:
        """Until what was put before this call is stored (one thread: in order)."""
        try:
            self._executor.submit(lambda: None).result(timeout)
        except FutureTimeout:
            return False
        return True

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    def _store(self, stored: StoredEvent) -> None:
        try:
            self.recorder.insert_events([stored])
        except Exception:
            log.warning("could not store the snapshot of aggregate %s at version %s: it is read from its events",
                        stored.originator_id, stored.originator_version, exc_info=True)


def upcast_and_build(cls: type[Any], event_state: dict[str, Any]) -> Any:
    """The last steps of ``Mapper.to_domain_event``: upcast the state to the
    class's version and build the event object from it."""
    class_version = getattr(cls, "class_version", 1)
    from_version = event_state.pop("class_version", 1)
    while from_version < class_version:
        getattr(cls, f"upcast_v{from_version}_v{from_version + 1}")(event_state)
        from_version += 1
    domain_event = object.__new__(cls)
    object.__setattr__(domain_event, "__dict__", event_state)
    return domain_event


class LedgerStore(Application[UUID]):
    """Organizers, paid events and registrations in one append-only store.

    One store means one global order (the notification log) for every fact, which
    is what the projections, the relay and the notify worker follow.
    """

    name = "ledger"
    # A popular event accumulates one seat event per registration: snapshots keep
    # its reconstruction short; the cache (with fast-forward) keeps it cheap.
    # Registrations are not snapshotted: a snapshot would hold their personal
    # data in clear (R24); they have few events, and the cache keeps them.
    snapshotting_intervals: ClassVar[dict[type[MutableOrImmutableAggregate[Any]], int]] = {
        PaidEvent: 200,
        Organizer: 50,
    }
    env: ClassVar[dict[str, str]] = {
        "AGGREGATE_CACHE_MAXSIZE": "2000",
        "AGGREGATE_CACHE_FASTFORWARD": "y",
        "COMPRESSOR_TOPIC": "",
        "APPLICATION_RECORDER_TOPIC": "ledger.application:LedgerRecorder",
    }

    _writer: SnapshotWriter | None = None
    _snapshot_writer_lock = threading.Lock()

    def save(self, *objs: Any, **kwargs: Any) -> list[Recording[UUID]]:
        """The library's ``save`` (collect, record, snapshot, notify) with a
        cheaper collection of the aggregates' events (:class:`_Collected`)."""
        processing_event = _Collected()
        processing_event.collect_events(*objs, **kwargs)
        recordings = self._record(processing_event)
        self._snapshot_saved(processing_event)
        self._notify(recordings)
        self.notify(processing_event.events)  # the library's deprecated hook, kept
        return recordings

    def _snapshot_saved(self, processing_event: ProcessingEvent[UUID]) -> None:
        """The snapshots this save is due (an event at a multiple of its
        type's ``snapshotting_intervals``), taken from the saved aggregates
        themselves, at the version saved.

        Why not the library's ``take_snapshot``: it reads the aggregate back
        -- the last snapshot and every event since (200 for an event) from
        the database, each decoded and applied -- to rebuild the state the
        command already holds: 8 % of a registration's in-process samples
        (``bench/floor.py``'s loop under py-spy), and a read on the request's
        path.  A sale's aggregate is a draft (``LedgerRepository.drafting``):
        its layered containers are read as the plain ones they stand for.

        Stored off the request's path (:class:`SnapshotWriter`): under a
        spread load every event reaches its next interval within the same
        seconds, and each snapshot written on its sale's request, in a
        transaction of its own, tripled the p99 of the seconds they came due
        in (9.8 → 30.7 ms at a paced 1,150/s, docs/performance.md).

        A snapshot is only a shortcut for later reads, and the save has
        committed: a failure here is logged, never raised to the caller (the
        aggregate is then rebuilt from the previous snapshot and its events)."""
        intervals = self.snapshotting_intervals
        if not self.snapshots or not intervals:
            return
        due: dict[UUID, Any] = {}
        for event in processing_event.events:
            aggregate = processing_event.aggregates.get(event.originator_id)
            interval = intervals.get(type(aggregate)) if aggregate is not None else None
            if interval is not None and event.originator_version % interval == 0:
                due[event.originator_id] = aggregate
        for aggregate_id, aggregate in due.items():
            try:
                snapshot_class: Any = getattr(type(aggregate), "Snapshot", type(self).snapshot_class)
                # Encoded now (the aggregate changes on), stored by the writer's thread.
                stored = self.snapshots.mapper.to_stored_event(snapshot_class.take(plain_aggregate(aggregate)))
            except Exception:
                log.warning("could not snapshot aggregate %s (its save has committed): it is read from its events",
                            aggregate_id, exc_info=True)
                continue
            self._snapshot_writer().put(stored)

    def _snapshot_writer(self) -> SnapshotWriter:
        with self._snapshot_writer_lock:
            if self._writer is None:
                assert self.snapshots is not None
                self._writer = SnapshotWriter(self.snapshots.recorder)
            return self._writer

    def flush_snapshots(self, timeout: float = 10.0) -> bool:
        """Until every snapshot taken so far was stored (or failed); ``False`` after ``timeout``."""
        writer = self._writer
        return writer is None or writer.flush(timeout)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        super().close()

    def construct_repository(self) -> Repository[UUID]:
        """The library's repository, with a cheaper copy of cached aggregates
        (``ledger.aggregate_cache``)."""
        library = super().construct_repository()
        return LedgerRepository(
            event_store=library.event_store, snapshot_store=library.snapshot_store,
            cache_maxsize=int(maxsize) if (maxsize := self.env.get(self.AGGREGATE_CACHE_MAXSIZE)) else None,
            fastforward=library.fastforward, fastforward_skipping=library.fastforward_skipping,
            deepcopy_from_cache=library.deepcopy_from_cache,
        )

    def construct_mapper(self) -> Mapper[UUID]:
        return self.factory.mapper(transcoder=self.construct_transcoder(), mapper_class=ActorMapper)

    def use_keyring(self, keyring: Keyring) -> None:
        """Seal personal data from now on (``entrypoints.bootstrap`` does it)."""
        if not isinstance(self.mapper, ActorMapper) or not isinstance(self.recorder, LedgerRecorder):
            raise TypeError("the ledger store needs its own mapper and recorder to seal personal data")
        self.mapper.keyring = keyring
        self.recorder.keyring = keyring

    @property
    def keyring(self) -> Keyring | None:
        return self.mapper.keyring if isinstance(self.mapper, ActorMapper) else None

    def register_transcodings(self, transcoder: Transcoder) -> None:
        super().register_transcodings(transcoder)  # type: ignore[arg-type]
