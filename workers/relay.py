"""The relay: every stored event, in global order, onto the Kafka topic.

Guarantees (docs/events.md states them for consumers):

* **Nothing is lost.**  ``relay_position.published_position`` (workers/relay.sql)
  moves only after the broker acknowledged (``acks=all``) every message up to
  it.  A crash or a broker outage re-sends from there, so consumers may see the
  un-acknowledged tail twice and drop it by event ``id`` — at most
  ``max_in_flight`` batches per crash.
* **Per-aggregate order.**  The key is the aggregate id, so an aggregate's
  events share a partition (kafka-python's default partitioning, murmur2 of
  the key, computed with less CPU by ``workers.key_partitioner``); the
  producer is idempotent (``enable_idempotence``, which kafka-python 3
  supports against both Tansu and Apache Kafka), so its internal retries
  neither reorder nor duplicate within a session.  Never transactional:
  Tansu shows aborted transactions to readers.
* **A broker that forgot.**  The embedded broker keeps topics in memory; after
  a restart the topic comes back empty with a new ``topic_id`` (KIP-516).  The
  relay checks the topic's id at start and every ``check_interval`` seconds;
  a different id means the stream was lost, and it republishes from position 0
  (``relay_position.resets`` counts it).  A broker that reports no topic ids
  cannot be checked this way (documented limit).
* **Prompt.**  It follows the log with ``ledger.log_follower`` (woken by the
  event store's NOTIFY, never a sleep loop); batches and keeps up to
  ``max_in_flight`` of them sent but unacknowledged, for throughput.
* **One publisher per topic.**  A PostgreSQL advisory lock, held on the
  follower's LISTEN connection, keeps a second relay (another ``ledger run`` on
  the same database) on stand-by; the lock dies with that connection or process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
import psycopg
from eventsourcing.persistence import Notification
from eventsourcing.utils import retry
from psycopg import sql
from psycopg.rows import tuple_row

from ledger import event_log
from ledger.log_follower import CommitListener, LogBatch, LogConsumer, LogFollower, Standby
from ledger.proof import queries as proof_queries
from workers.broker import BrokerUnavailable, answers, bootstrap_servers, describe, ensure_topic
from workers.key_partitioner import KeyHashPartitioner

if TYPE_CHECKING:
    from ledger.application import LedgerStore
    from ledger.container import Ledger

log = logging.getLogger(__name__)

CONTENT_TYPE = b"application/json"


class _Stopping(Exception):
    """``stop`` was set while waiting."""


class TopicReplaced(RuntimeError):
    """The broker's topic is not the one we were publishing into."""


@dataclass(frozen=True)
class RelayOptions:
    """Tuning; the defaults suit both the embedded broker and Apache Kafka."""

    batch_size: int = 500  #: events read and sent per batch
    max_in_flight: int = 4  #: batches sent but not yet acknowledged
    check_interval: float = 2.0  #: seconds between topic identity checks
    backoff_initial: float = 0.2
    backoff_max: float = 5.0
    producer: Mapping[str, Any] = field(default_factory=dict)  #: KafkaProducer overrides


def build(ledger: Ledger) -> RelayWorker:
    """``ledger worker relay`` / ``ledger run`` (entrypoints/worker_registry.py)."""
    return RelayWorker(ledger)


Message = tuple[bytes, bytes, list[tuple[str, bytes]]]


def encode(item: event_log.LogItem, *, include_pii: bool, chain_hash: str | None = None) -> Message:
    """(key, value, headers) of one message; docs/events.md is the contract.
    ``hash`` is the event's chain hash (R23, docs/audit.md) when the sealer had
    sealed it before the relay read it, else null: the relay never waits for it."""
    value = orjson.dumps({**item.as_dict(include_pii=include_pii), "hash": chain_hash})
    headers = [
        ("event-id", item.id.encode()),
        ("event-type", item.type.encode()),
        ("content-type", CONTENT_TYPE),
        ("schema-version", str(item.schema_version).encode()),
    ]
    return item.aggregate_id.encode(), value, headers


class MessageEncoder:
    """Stored notifications → the messages :func:`encode` makes of their
    ``LogItem``, byte for byte, without building domain events or items
    (``event_log.EnvelopeDecoder``; the mapper's path for what it declines).
    Header values that only depend on the event class are encoded once."""

    def __init__(self, store: LedgerStore, *, include_pii: bool) -> None:
        self.store, self.include_pii = store, include_pii
        self.envelopes = event_log.EnvelopeDecoder(store, include_pii=include_pii)
        self._headers: dict[str, tuple[bytes, bytes]] = {}

    def encode(self, notifications: Sequence[Notification], hashes: Mapping[int, str]) -> list[Message]:
        """One message per notification, in order; ``hashes`` holds the chain
        hashes of the sealed positions.  Keys are read fresh first, so a
        message never shows data another process erased (R24)."""
        envelopes = self.envelopes
        holds_key = envelopes.prepare(notifications)
        messages: list[Message | None] = []
        declined = []
        for n, notification in enumerate(notifications):
            found = envelopes.envelope(notification, holds_key)
            if found is None:
                declined.append(n)
                messages.append(None)
                continue
            public, envelope = found
            envelope["hash"] = hashes.get(notification.id)
            constant = self._headers.get(public.name)
            if constant is None:
                constant = self._headers[public.name] = (public.name.encode(), str(public.schema_version).encode())
            headers = [
                ("event-id", envelope["id"].encode()),
                ("event-type", constant[0]),
                ("content-type", CONTENT_TYPE),
                ("schema-version", constant[1]),
            ]
            messages.append((envelope["aggregate_id"].encode(), orjson.dumps(envelope), headers))
        if declined:  # e.g. events stored at an older class version: the mapper's path, keys read first
            event_log.prepare_keys(self.store, [notifications[n] for n in declined])
            for n in declined:
                item = event_log.to_item(self.store, notifications[n])
                messages[n] = encode(item, include_pii=self.include_pii, chain_hash=hashes.get(item.position))
        return [m for m in messages if m is not None]


def producer_config(bootstrap: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Idempotent, acks=all, batched.  Auto-creation is off so that only the
    relay creates the topic, with the configured partitions (Tansu ignores the
    flag; the topic identity check covers that)."""
    config: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "client_id": "ledger-relay",
        "acks": "all",
        "enable_idempotence": True,
        "max_in_flight_requests_per_connection": 5,
        "linger_ms": 5,
        "batch_size": 256 * 1024,
        "allow_auto_create_topics": False,
        "request_timeout_ms": 10_000,
        "delivery_timeout_ms": 30_000,
        "max_block_ms": 3_000,
        "bootstrap_timeout_ms": 5_000,
        "reconnect_backoff_max_ms": 1_000,
    }
    config.update(overrides or {})
    return config


class Positions:
    """``relay_position`` rows: what the broker has acknowledged, per topic."""

    def __init__(self, ledger: Ledger) -> None:
        self.db = ledger.db

    def get(self, topic: str) -> tuple[int, str | None, int]:
        """(published position, topic id, resets); (0, None, 0) before the first run."""
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT published_position, topic_id, resets FROM relay_position WHERE topic = %s", (topic,)
            ).fetchone()
        return (int(row[0]), row[1], int(row[2])) if row else (0, None, 0)

    def start(self, topic: str, topic_id: str | None) -> int:
        """The position to publish after, given the topic we found on the broker.
        A topic id other than the recorded one means the broker lost (or never
        had) what we published: start over."""
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO relay_position (topic, topic_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (topic, topic_id),
            )
            position, known = conn.execute(
                "SELECT published_position, topic_id FROM relay_position WHERE topic = %s FOR UPDATE",
                (topic,),
            ).fetchone() or (0, None)
            if topic_id is None or known == topic_id:
                return int(position)
            if known is not None:
                log.warning(
                    "topic %s is new on the broker (id %s, was %s): republishing from the start",
                    topic, topic_id, known,
                )
                conn.execute(
                    "UPDATE relay_position SET published_position = 0, topic_id = %s, "
                    "resets = resets + 1, updated_at = now() WHERE topic = %s",
                    (topic_id, topic),
                )
                return 0
            conn.execute("UPDATE relay_position SET topic_id = %s WHERE topic = %s", (topic_id, topic))
            return int(position)

    def advance(self, topic: str, position: int) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE relay_position SET published_position = %s, updated_at = now() "
                "WHERE topic = %s AND published_position < %s",
                (position, topic, position),
            )


class TopicGuard:
    """Detects that the broker's topic is not the one we publish into (checked
    at most every ``interval`` seconds: one metadata round trip)."""

    def __init__(self, admin: Any, topic: str, topic_id: str | None, interval: float) -> None:
        self.admin, self.topic, self.topic_id, self.interval = admin, topic, topic_id, interval
        self._next = time.monotonic() + interval

    def check(self) -> None:
        if time.monotonic() < self._next:
            return
        state = describe(self.admin, self.topic)
        self._next = time.monotonic() + self.interval
        if not state.exists:
            raise TopicReplaced(f"topic {self.topic} disappeared from the broker")
        if self.topic_id is not None and state.topic_id not in (None, self.topic_id):
            raise TopicReplaced(f"topic {self.topic} was created anew ({state.topic_id})")


@dataclass(frozen=True)
class HashedBatch(LogBatch):
    """A batch read with each sealed event's chain hash (position → hex)."""

    hashes: Mapping[int, str] = field(default_factory=dict)


def batch_reader(ledger: Ledger, limit: int) -> Callable[[int], HashedBatch]:
    """The follower's read for the relay: the next ``limit`` stored events
    after a position, in the log's order, with the chain hash of those the
    sealer had sealed -- one query (the event table joined with
    ``ledger_event_hashes``) where the follower's plain read and a hash query
    took two, and plain rows instead of the recorder's dict rows.  Safe to read
    at any time for the reason ``ledger.log_follower.read_batch`` is: the store
    inserts under an exclusive table lock, so no smaller position can appear
    later.  Retried on a broken connection as the recorder's read is, so a
    database blip does not cost the broker session (and re-sends)."""
    recorder: Any = ledger.store.recorder
    query = sql.SQL(
        "SELECT e.notification_id, e.originator_id, e.originator_version, e.topic, e.state, h.chain_hash"
        " FROM {events} e LEFT JOIN ledger_event_hashes h ON h.position = e.notification_id"
        " WHERE e.notification_id > %s ORDER BY e.notification_id LIMIT %s"
    ).format(events=sql.Identifier(recorder.datastore.schema, recorder.events_table_name))

    @retry((psycopg.InterfaceError, psycopg.OperationalError), max_attempts=10, wait=0.2)
    def read(after: int) -> HashedBatch:
        with ledger.db.transaction() as conn, conn.cursor(row_factory=tuple_row) as cursor:
            rows = cursor.execute(query, (after, limit), prepare=True).fetchall()
        notifications = [
            Notification(id=i, originator_id=o, originator_version=v, topic=t, state=bytes(state))
            for i, o, v, t, state, _ in rows
        ]
        hashes = {row[0]: bytes(row[5]).hex() for row in rows if row[5] is not None}
        return HashedBatch(after, notifications, rows[-1][0] if rows else after, hashes)

    return read


@dataclass
class _Batch:
    last_position: int
    futures: list[Any]


@dataclass
class _Session:
    """One connected session: what ``resume`` opens and a failure closes."""

    admin: Any
    producer: Any
    guard: TopicGuard
    inflight: deque[_Batch] = field(default_factory=deque)


class RelayWorker(LogConsumer):
    """See the module docstring.  ``run`` returns within about a second of
    ``stop`` being set (after a last short wait for in-flight acknowledgements).

    As the follower's consumer: ``attach`` takes the topic's lock, ``resume``
    connects to the broker and returns the acknowledged position, ``consume``
    sends a batch (it is recorded once acknowledged, by ``_settle``), ``idle``
    records acknowledgements while caught up, ``abandon`` drops the session:
    whatever was sent but not acknowledged is sent again from the recorded
    position."""

    name = "relay"

    def __init__(self, ledger: Ledger, options: RelayOptions | None = None, *, bootstrap: str | None = None):
        self.ledger = ledger
        self.options = options or RelayOptions()
        self.bootstrap = bootstrap
        self.topic = ledger.settings.kafka_topic
        self.positions = Positions(ledger)
        self._encoder = MessageEncoder(ledger.store, include_pii=ledger.settings.kafka_include_pii)
        self.published = 0  #: last acknowledged position (for tests and metrics)
        self.connected_at: float | None = None  #: monotonic time the current session began publishing
        self.follower: LogFollower | None = None  #: while ``run`` follows: its health
        self._stop = threading.Event()
        self._session: _Session | None = None
        self._standing_by = False
        self._interrupted = False  # stop came while waiting on the broker: no drain

    def run(self, stop: threading.Event) -> None:
        self._stop, self._interrupted = stop, False
        self.follower = LogFollower(
            self.ledger.store.recorder, self.ledger.database_url, self, name="relay",
            batch_size=self.options.batch_size, read=batch_reader(self.ledger, self.options.batch_size),
            reread_after=min(0.5, self.options.check_interval),
            backoff_initial=self.options.backoff_initial, backoff_max=self.options.backoff_max,
        )
        try:
            self.follower.run(stop)
        finally:
            self._end_session(drain=not self._interrupted)

    # --- LogConsumer ---------------------------------------------------------------

    def attach(self, listener: CommitListener) -> None:
        if not listener.try_advisory_lock(f"ledger-relay:{self.topic}"):
            if not self._standing_by:
                log.info("another relay publishes %s; standing by", self.topic)
            self._standing_by = True
            raise Standby(self.topic)
        self._standing_by = False

    def resume(self) -> int:
        """Open a session (fail fast if no broker answers: client bootstraps
        block for seconds) and return the acknowledged position, which
        ``Positions.start`` resets to 0 if the broker's topic is a new one."""
        from kafka import KafkaAdminClient, KafkaProducer

        self._end_session(drain=False)
        bootstrap = self.bootstrap or bootstrap_servers(self.ledger.settings)
        if not bootstrap:
            raise BrokerUnavailable("no broker: set LEDGER_KAFKA_BOOTSTRAP or start `ledger run`")
        if not answers(bootstrap):
            raise BrokerUnavailable(f"no Kafka broker answers at {bootstrap}")
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap, client_id="ledger-relay-admin",
            request_timeout_ms=5_000, bootstrap_timeout_ms=5_000,
        )
        try:
            state = ensure_topic(admin, self.topic, self.ledger.settings.kafka_partitions)
            position = self.positions.start(self.topic, state.topic_id)
            guard = TopicGuard(admin, self.topic, state.topic_id, self.options.check_interval)
            producer = KafkaProducer(**{"partitioner": KeyHashPartitioner(),
                                        **producer_config(bootstrap, self.options.producer)})
        except BaseException:
            admin.close()
            raise
        self._session = _Session(admin, producer, guard)
        self.published = position
        log.info("relay publishing to %s from position %d", self.topic, position)
        self.connected_at = time.monotonic()
        return position

    def consume(self, batch: LogBatch) -> int:
        """Send ``batch``, first recording acknowledged batches (waiting for the
        oldest when ``max_in_flight`` are out)."""
        session = self._live()
        session.guard.check()
        self._settle(session, block=len(session.inflight) >= self.options.max_in_flight)
        futures = []
        if isinstance(batch, HashedBatch):
            hashes = batch.hashes
        else:
            with self.ledger.db.transaction() as conn:
                hashes = proof_queries.chain_hashes(conn, [n.id for n in batch.notifications])
        # Encode the whole batch first (its keys read fresh: a replay shows
        # erased data as erased, R24), then send it in one tight loop: the
        # producer's batches then fill as a raw producer's do, instead of its
        # sender thread waking (a socket write each time) to ship a few
        # messages between two encodes (docs/performance.md, relay).
        messages = self._encoder.encode(batch.notifications, hashes)
        send = session.producer.send
        for key, value, headers in messages:
            futures.append(send(self.topic, key=key, value=value, headers=headers))
        session.inflight.append(_Batch(batch.reached, futures))
        return batch.reached

    def idle(self) -> float:
        """Caught up: record what was acknowledged.  With acks pending, ask for
        a short wait so they are recorded promptly (a NOTIFY still cuts it
        short); otherwise the wait only bounds how late the topic check runs."""
        session = self._live()
        session.guard.check()
        if session.inflight:
            self._settle(session, block=False)
        return 0.002 if session.inflight else min(0.5, self.options.check_interval)

    def abandon(self, error: BaseException) -> None:
        self._end_session(drain=False)

    # --- the session ---------------------------------------------------------------

    def _live(self) -> _Session:
        assert self._session is not None, "resume() opens the session first"
        return self._session

    def _end_session(self, *, drain: bool) -> None:
        """Close producer and admin client.  With ``drain`` (a clean stop),
        first record whatever gets acknowledged within 0.8 s, so a restart
        re-sends as little as possible."""
        session, self._session = self._session, None
        if session is None:
            return
        self.connected_at = None
        try:
            if drain:
                self._drain(session.inflight, deadline=time.monotonic() + 0.8)
        except Exception as error:  # e.g. the database went away: re-sent after restart
            log.warning("relay: recording the last acknowledgements failed: %s", error)
        finally:
            try:
                close_producer(session.producer)
            finally:
                session.admin.close()

    def _settle(self, session: _Session, *, block: bool) -> None:
        """Record the position of the oldest acknowledged batches (FIFO: a later
        batch may be acknowledged first, but the position must never jump over
        an unacknowledged one).  With ``block``, wait for the oldest batch."""
        inflight, settled = session.inflight, None
        while inflight:
            batch = inflight[0]
            if not block and not all(f.is_done for f in batch.futures):
                break
            for future in batch.futures:
                self._await(future, session.guard)
            inflight.popleft()
            settled = batch.last_position
            block = False
        self._record(settled)

    def _await(self, future: Any, guard: TopicGuard) -> None:
        from kafka.errors import KafkaTimeoutError

        while not future.is_done:
            try:
                future.get(timeout=0.2)
            except KafkaTimeoutError:
                if not future.is_done:  # still waiting (not an expired batch)
                    if self._stop.is_set():
                        self._interrupted = True
                        raise _Stopping from None
                    guard.check()
        if future.failed():
            raise future.exception

    def _drain(self, inflight: deque[_Batch], *, deadline: float) -> None:
        settled = None
        for batch in inflight:
            if not all(_acked(f, deadline) for f in batch.futures):
                break
            settled = batch.last_position
        self._record(settled)

    def _record(self, position: int | None) -> None:
        if position is not None:
            self.positions.advance(self.topic, position)
            self.published = position


def _acked(future: Any, deadline: float) -> bool:
    try:
        future.get(timeout=max(0.0, deadline - time.monotonic()))
    except Exception:  # timed out or failed: not recorded, so re-sent later
        return False
    return True


def close_producer(producer: Any) -> None:
    """Close without waiting for unacknowledged messages (they are re-sent by the
    next session).  kafka-python's ``close`` flushes first and, when that times
    out, raises before stopping its sender thread, which would then live on:
    stop the thread ourselves in that case."""
    try:
        producer.close(timeout=0)
    except Exception:
        sender = getattr(producer, "_sender", None)
        if sender is not None and sender.is_alive():
            sender.force_close()
