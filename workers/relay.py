"""The relay: every stored event, in global order, onto the Kafka topic.

Guarantees (docs/events.md states them for consumers):

* **Nothing is lost.**  ``relay_position.published_position`` (workers/relay.sql)
  moves only after the broker acknowledged (``acks=all``) every message up to
  it.  A crash or a broker outage re-sends from there, so consumers may see the
  un-acknowledged tail twice and drop it by event ``id`` — at most
  ``max_in_flight`` batches per crash.
* **Per-aggregate order.**  The key is the aggregate id, so an aggregate's
  events share a partition; the producer is idempotent (``enable_idempotence``,
  which kafka-python 3 supports against both Tansu and Apache Kafka), so its
  internal retries neither reorder nor duplicate within a session.  Never
  transactional: Tansu shows aborted transactions to readers.
* **A broker that forgot.**  The embedded broker keeps topics in memory; after
  a restart the topic comes back empty with a new ``topic_id`` (KIP-516).  The
  relay checks the topic's id at start and every ``check_interval`` seconds;
  a different id means the stream was lost, and it republishes from position 0
  (``relay_position.resets`` counts it).  A broker that reports no topic ids
  cannot be checked this way (documented limit).
* **Prompt.**  It waits on LISTEN (the event store's NOTIFY channel), never a
  sleep loop; batches and keeps several in flight for throughput.
* **One publisher per topic.**  A PostgreSQL advisory lock keeps a second relay
  (another ``ledger run`` on the same database) on stand-by.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg

from ledger import event_log
from workers.broker import BrokerUnavailable, answers, bootstrap_servers, describe, ensure_topic

if TYPE_CHECKING:
    from entrypoints.bootstrap import Ledger

log = logging.getLogger(__name__)

CONTENT_TYPE = b"application/json"
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # built once: json.dumps would per call


class _Stopping(Exception):
    """``stop`` was set while waiting."""


class _StandBy(Exception):
    """Another relay holds the topic's lock."""


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
    """``ledger worker relay`` / ``ledger run`` (workers/base.py)."""
    return RelayWorker(ledger)


def encode(item: event_log.LogItem, *, include_pii: bool) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """(key, value, headers) of one message; docs/events.md is the contract."""
    value = _JSON.encode(item.as_dict(include_pii=include_pii))
    headers = [
        ("event-id", item.id.encode()),
        ("event-type", item.type.encode()),
        ("content-type", CONTENT_TYPE),
        ("schema-version", str(item.schema_version).encode()),
    ]
    return item.aggregate_id.encode(), value.encode(), headers


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


class CommitListener:
    """LISTEN on the event store's NOTIFY channel, on a connection of its own.

    LISTEN is issued before the first read, so a commit between a read that
    found nothing and the wait still wakes the wait.  The same session holds
    the relay's advisory lock: it dies with the process, freeing the lock."""

    def __init__(self, url: str, channel: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)
        self.conn.execute(f'LISTEN "{channel}"')

    def try_lock(self, name: str) -> bool:
        key = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)
        row = self.conn.execute("SELECT pg_try_advisory_lock(%s::bigint)", (key,)).fetchone()
        return bool(row and row[0])

    def wait(self, timeout: float) -> bool:
        """Return at the first NOTIFY (True) or after ``timeout`` seconds (False)."""
        notified = False
        for _ in self.conn.notifies(timeout=timeout, stop_after=1):
            notified = True
        return notified

    def close(self) -> None:
        self.conn.close()


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


@dataclass
class _Batch:
    last_position: int
    futures: list[Any]


class RelayWorker:
    """See the module docstring.  ``run`` returns within about a second of
    ``stop`` being set (after a last short wait for in-flight acknowledgements)."""

    name = "relay"

    def __init__(self, ledger: Ledger, options: RelayOptions | None = None, *, bootstrap: str | None = None):
        self.ledger = ledger
        self.options = options or RelayOptions()
        self.bootstrap = bootstrap
        self.topic = ledger.settings.kafka_topic
        self.positions = Positions(ledger)
        self.published = 0  #: last acknowledged position (for tests and metrics)
        self.connected_at: float | None = None  #: monotonic time the current session began publishing

    def run(self, stop: threading.Event) -> None:
        backoff = self.options.backoff_initial
        standing_by = False
        while not stop.is_set():
            progress_before, started = self.published, time.monotonic()
            try:
                self._session(stop)
                return
            except _Stopping:
                return
            except _StandBy:
                if not standing_by:
                    log.info("another relay publishes %s; standing by", self.topic)
                standing_by = True
                stop.wait(1.0)
                continue
            except Exception as error:  # broker or database trouble: never give up, never skip
                if self.published != progress_before or time.monotonic() - started > 10:
                    # it was working: retry soon
                    backoff = self.options.backoff_initial
                log.warning("relay: %s: %s; retrying in %.1fs", type(error).__name__, error, backoff)
            stop.wait(backoff)
            backoff = min(backoff * 2, self.options.backoff_max)

    # --- one connected session ----------------------------------------------------

    def _session(self, stop: threading.Event) -> None:
        from kafka import KafkaAdminClient, KafkaProducer

        bootstrap = self.bootstrap or bootstrap_servers(self.ledger.settings)
        if not bootstrap:
            raise BrokerUnavailable("no broker: set LEDGER_KAFKA_BOOTSTRAP or start `ledger run`")
        if not answers(bootstrap):  # fail fast: client bootstraps block for seconds
            raise BrokerUnavailable(f"no Kafka broker answers at {bootstrap}")
        store = self.ledger.store
        listener = CommitListener(self.ledger.database_url, store.recorder.channel_name)  # type: ignore[attr-defined]
        try:
            if not listener.try_lock(f"ledger-relay:{self.topic}"):
                raise _StandBy
            admin = KafkaAdminClient(
                bootstrap_servers=bootstrap, client_id="ledger-relay-admin",
                request_timeout_ms=5_000, bootstrap_timeout_ms=5_000,
            )
            try:
                state = ensure_topic(admin, self.topic, self.ledger.settings.kafka_partitions)
                position = self.positions.start(self.topic, state.topic_id)
                self.published = position
                guard = TopicGuard(admin, self.topic, state.topic_id, self.options.check_interval)
                producer = KafkaProducer(**producer_config(bootstrap, self.options.producer))
                try:
                    log.info("relay publishing to %s from position %d", self.topic, position)
                    self.connected_at = time.monotonic()
                    self._pump(stop, listener, producer, guard, position)
                finally:
                    self.connected_at = None
                    close_producer(producer)
            finally:
                admin.close()
        finally:
            listener.close()

    def _pump(
        self, stop: threading.Event, listener: CommitListener, producer: Any, guard: TopicGuard, sent: int
    ) -> None:
        """Read, send, settle acknowledgements in order, wait for commits."""
        store, topic, pii = self.ledger.store, self.topic, self.ledger.settings.kafka_include_pii
        inflight: deque[_Batch] = deque()
        must_read = True
        while True:
            if stop.is_set():
                self._drain(inflight, deadline=time.monotonic() + 0.8)
                raise _Stopping
            guard.check()
            self._settle(inflight, stop, guard, block=len(inflight) >= self.options.max_in_flight)
            if must_read:
                items = event_log.read(store, after=sent, limit=self.options.batch_size)
                if items:
                    futures = []
                    for item in items:
                        key, value, headers = encode(item, include_pii=pii)
                        futures.append(producer.send(topic, key=key, value=value, headers=headers))
                    inflight.append(_Batch(items[-1].position, futures))
                    sent = items[-1].position
                    continue
            if inflight:  # caught up, acks pending: record them, but let a new commit in at once
                self._settle(inflight, stop, guard, block=False)
                must_read = listener.wait(timeout=0.002) if inflight else True
                continue
            # Idle.  The timeout only bounds how late ``stop`` and the topic
            # check are noticed; the read after it is a cheap safety net.
            listener.wait(timeout=min(0.5, self.options.check_interval))
            must_read = True

    def _settle(self, inflight: deque[_Batch], stop: threading.Event, guard: TopicGuard, *, block: bool) -> None:
        """Record the position of the oldest acknowledged batches (FIFO: a later
        batch may be acknowledged first, but the position must never jump over
        an unacknowledged one).  With ``block``, wait for the oldest batch."""
        settled = None
        while inflight:
            batch = inflight[0]
            if not block and not all(f.is_done for f in batch.futures):
                break
            for future in batch.futures:
                self._await(future, stop, guard)
            inflight.popleft()
            settled = batch.last_position
            block = False
        self._record(settled)

    @staticmethod
    def _await(future: Any, stop: threading.Event, guard: TopicGuard) -> None:
        from kafka.errors import KafkaTimeoutError

        while not future.is_done:
            try:
                future.get(timeout=0.2)
            except KafkaTimeoutError:
                if not future.is_done:  # still waiting (not an expired batch)
                    if stop.is_set():
                        raise _Stopping from None
                    guard.check()
        if future.failed():
            raise future.exception

    def _drain(self, inflight: deque[_Batch], *, deadline: float) -> None:
        """On stop: record whatever gets acknowledged before ``deadline``, so a
        clean restart re-sends as little as possible."""
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
