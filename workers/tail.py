"""``ledger tail``: read the event stream the way another team would.

A consumer group (so several tails share the partitions, and a restarted tail
continues where its group left off), offsets committed only after the events
are printed (at-least-once), and de-duplication by event ``id`` — the relay may
re-send its un-acknowledged tail after a crash, or the whole log after the
broker lost its data.  The id memory here is bounded; a real consumer keeps the
ids (or the last ``aggregate_version`` per aggregate) with its own effects —
see docs/events.md and examples/consume_events.py.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TextIO

from workers.broker import BrokerUnavailable, answers, bootstrap_servers, describe

if TYPE_CHECKING:
    from ledger.config import Settings

log = logging.getLogger(__name__)

#: Valid on Apache Kafka (group.min.session.timeout.ms = 6000) and keeps Tansu's
#: first JoinGroup (which waits session_timeout_ms / 2) at 3 s.
DEFAULT_GROUP_OPTIONS = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 2000}


class SeenIds:
    """The most recent ``capacity`` event ids, oldest forgotten first."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def add(self, event_id: str) -> bool:
        """True if new; False for a duplicate."""
        if event_id in self._ids:
            self._ids.move_to_end(event_id)
            return False
        self._ids[event_id] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return True


def format_line(event: Mapping[str, Any]) -> str:
    """``#position occurred_at Type aggregate_type/aggregate_id vN {data}``."""
    return (
        f"#{event.get('position')} {event.get('occurred_at')} {event.get('type')} "
        f"{event.get('aggregate_type')}/{event.get('aggregate_id')} v{event.get('aggregate_version')} "
        f"{json.dumps(event.get('data'), ensure_ascii=False, separators=(',', ':'))}"
    )


def tail(
    settings: Settings,
    from_beginning: bool,
    group: str,
    out: TextIO,
    *,
    json_lines: bool = False,
    stop: threading.Event | None = None,
    consumer_options: Mapping[str, Any] | None = None,
    remember: int = 100_000,
) -> None:
    """Print every event of ``settings.kafka_topic`` until ``stop`` is set (or
    KeyboardInterrupt).  ``from_beginning`` starts a group without committed
    offsets at the oldest message, else at the newest.  ``json_lines`` prints
    the envelope itself, one JSON object per line."""
    from kafka import KafkaAdminClient, KafkaConsumer

    stop = stop or threading.Event()
    bootstrap = bootstrap_servers(settings)
    if not bootstrap:
        raise BrokerUnavailable("no broker: set LEDGER_KAFKA_BOOTSTRAP or start `ledger run`")
    if not answers(bootstrap, timeout=2.0):
        raise BrokerUnavailable(f"no Kafka broker answers at {bootstrap}")
    topic = settings.kafka_topic
    # Subscribing to a missing topic would make Tansu create it with its default
    # partition count: wait for the relay to create it instead.
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="ledger-tail", bootstrap_timeout_ms=5000)
    try:
        while not describe(admin, topic).exists:
            if stop.wait(0.5):
                return
    finally:
        admin.close()
    options: dict[str, Any] = {**DEFAULT_GROUP_OPTIONS, **(consumer_options or {})}
    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group, client_id="ledger-tail",
        enable_auto_commit=False, auto_offset_reset="earliest" if from_beginning else "latest",
        allow_auto_create_topics=False, **options,
    )
    seen = SeenIds(remember)
    try:
        while not stop.is_set():
            batches = consumer.poll(timeout_ms=300)
            if not batches:
                continue
            for records in batches.values():
                for record in records:
                    try:
                        event = json.loads(record.value)
                    except ValueError:
                        out.write(f"! undecodable message at {record.partition}:{record.offset}\n")
                        continue
                    if not seen.add(str(event.get("id"))):
                        continue  # a re-sent event: already printed
                    line = json.dumps(event, ensure_ascii=False) if json_lines else format_line(event)
                    out.write(line + "\n")
            out.flush()
            consumer.commit()  # after printing: a crash re-prints, never skips
    finally:
        _close(consumer)


def _close(consumer: Any) -> None:
    try:
        consumer.close(autocommit=False, timeout_ms=2000)  # offsets were committed after each print
    except Exception as error:  # leaving the group is best effort; the broker times us out
        log.debug("closing the consumer: %s", error)
