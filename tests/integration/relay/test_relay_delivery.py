"""The relay against the real (embedded Tansu) broker: every event arrives, in
order per aggregate, as documented (schemas, headers, no PII by default),
promptly, and the relay stops promptly — also with no broker at all."""

from __future__ import annotations

import io
import json
import threading
import time
import uuid

from kafka import KafkaAdminClient, KafkaProducer
from kafka.partitioner import murmur2

from ledger import event_log
from ledger.event_log import PII_FIELDS, PUBLIC_TYPES
from ledger.personal_data import PERSONAL_FIELDS
from tests.integration.relay.scenario import busy_event, full_story
from tests.support.kafka import TEST_GROUP_OPTIONS, ids_seen, read_topic
from tests.support.relay import (
    SCHEMAS,
    TEST_OPTIONS,
    all_items,
    assert_stream_sound,
    validators,
    with_settings,
)
from workers.broker import EmbeddedBroker, bootstrap_servers, describe, ensure_broker, free_port
from workers.relay import RelayWorker
from workers.tail import tail


def test_every_event_arrives_in_order_and_matches_its_schema(relay_ledger, start_relay, kafka_broker):
    full_story(relay_ledger)
    relay = start_relay()
    busy_event(relay_ledger, registrations=40)  # written while the relay follows
    relay.wait_published()
    items = all_items(relay_ledger)
    assert {item.type for item in items} == {public for public, _ in PUBLIC_TYPES.values()}

    messages = read_topic(kafka_broker.bootstrap, relay_ledger.settings.kafka_topic, until=ids_seen(i.id for i in items))
    assert_stream_sound(messages, items)
    checks = validators()
    for message in messages:
        event = message.event
        checks["envelope"].validate(event)
        checks[event["type"]].validate(event)
        chain_hash = event.pop("hash")  # R23: the chain hash when sealed before publishing, else null
        assert chain_hash is None or len(bytes.fromhex(chain_hash)) == 32
        assert event == json.loads(json.dumps(next(i for i in items if i.id == event["id"]).as_dict(include_pii=False)))
        if event["aggregate_type"] == "registration":
            assert not PII_FIELDS & set(event["data"]), event
    for pii in (b"p0@example.org", b"Person 0"):
        assert not any(pii in m.value for m in messages)
    # Per-key order: each key on the partition kafka-python's default partitioner picks.
    partitions = relay_ledger.settings.kafka_partitions
    assert partitions > 1
    for message in messages:
        assert message.key is not None
        assert message.partition == (murmur2(message.key) & 0x7FFFFFFF) % partitions, message

    admin = KafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap)
    assert describe(admin, relay_ledger.settings.kafka_topic).partitions == relay_ledger.settings.kafka_partitions
    admin.close()


def test_personal_data_only_when_opted_in(relay_ledger, start_relay, kafka_broker, kafka_topic):
    with_pii = with_settings(relay_ledger, kafka_include_pii=True, kafka_topic=kafka_topic + ".pii")
    full_story(relay_ledger)
    start_relay(with_pii).wait_published()
    items = all_items(relay_ledger)
    messages = read_topic(kafka_broker.bootstrap, kafka_topic + ".pii", until=ids_seen(i.id for i in items))
    registered = [m.event for m in messages if m.event["type"] == "ParticipantRegistered"]
    assert {e["data"]["email"] for e in registered} >= {"p0@example.org", "p2@example.org"}
    # The story erased Person 1 (R24): its messages carry no personal data even with PII on.
    assert "p1@example.org" not in {e["data"]["email"] for e in registered}
    assert any(e["data"]["erased"] and e["data"]["name"] is None for e in registered)
    checks = validators()
    for message in messages:
        checks[message.event["type"]].validate(message.event)


def test_a_new_command_reaches_the_topic_promptly(relay_ledger, start_relay, kafka_broker):
    relay = start_relay()
    full_story(relay_ledger)
    relay.wait_published()
    time.sleep(0.5)  # idle: waiting on LISTEN
    started = time.monotonic()
    organizer = relay_ledger.service.register_organizer(name="Late", country="PL", plan_size=5)
    relay.wait_published(timeout=1.0)
    latency = time.monotonic() - started
    assert latency < 0.5, latency
    position = event_log.head(relay_ledger.store)
    messages = read_topic(
        kafka_broker.bootstrap, relay_ledger.settings.kafka_topic,
        until=lambda ms: any(m.event["position"] == position for m in ms),
    )
    assert any(m.event["aggregate_id"] == str(organizer.id) for m in messages)
    assert relay.stop() < 1.5  # idle relay stops promptly


def test_relay_waits_for_a_broker_and_stops_promptly(fresh_ledger):
    dead = with_settings(fresh_ledger, kafka_bootstrap=f"127.0.0.1:{free_port()}", kafka_topic="nowhere")
    full_story(dead)
    worker = RelayWorker(dead, TEST_OPTIONS)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    time.sleep(1.0)
    assert worker.published == 0 and thread.is_alive()
    started = time.monotonic()
    stop.set()
    thread.join(3)
    assert not thread.is_alive() and time.monotonic() - started < 1.5


def test_a_late_broker_gets_everything(fresh_ledger, start_relay, kafka_topic):
    """Commands accepted before any broker exists are all published once it answers."""
    broker = EmbeddedBroker(port=free_port())
    ledger = with_settings(fresh_ledger, kafka_bootstrap=broker.bootstrap, kafka_topic=kafka_topic)
    relay = start_relay(ledger)
    full_story(ledger)
    time.sleep(0.5)
    assert relay.worker.published == 0
    with broker:
        relay.wait_published()
        items = all_items(ledger)
        assert_stream_sound(read_topic(broker.bootstrap, kafka_topic, until=ids_seen(i.id for i in items)), items)
        relay.stop()


def test_tail_prints_each_event_once(relay_ledger, start_relay, kafka_broker):
    full_story(relay_ledger)
    start_relay().wait_published()
    items = all_items(relay_ledger)
    # A re-sent message (as after a relay crash) must be printed once only.
    first = read_topic(kafka_broker.bootstrap, relay_ledger.settings.kafka_topic, until=lambda ms: len(ms) > 0)[0]
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
    producer.send(relay_ledger.settings.kafka_topic, key=first.key, value=first.value).get(5)
    producer.close()

    out = _LockedText()
    stop = threading.Event()
    thread = threading.Thread(
        target=tail, args=(relay_ledger.settings, True, f"tail-{uuid.uuid4().hex[:6]}", out),
        kwargs={"stop": stop, "consumer_options": TEST_GROUP_OPTIONS, "json_lines": True},
    )
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while len(out.lines()) < len(items):
            assert time.monotonic() < deadline, f"tail printed {len(out.lines())} of {len(items)}"
            time.sleep(0.05)
        printed = [json.loads(line)["id"] for line in out.lines()]
        assert sorted(printed) == sorted(i.id for i in items)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


def test_every_public_type_has_a_schema_that_matches_its_class():
    """docs/schemas follows the domain: a field added to an event class without
    its schema (or a schema field that the class lacks) fails here."""
    documented = (SCHEMAS.parent / "events.md").read_text()
    for cls, (public, aggregate_type) in PUBLIC_TYPES.items():
        schema = json.loads((SCHEMAS / f"{public}.json").read_text())
        props = schema["properties"]
        assert props["type"] == {"const": public}
        assert props["aggregate_type"] == {"const": aggregate_type}
        assert props["schema_version"] == {"const": getattr(cls, "class_version", 1)}
        fields = {  # the fields our domain declares, not the library's envelope
            name for klass in cls.__mro__ if klass.__module__.startswith("ledger.")
            for name in vars(klass).get("__annotations__", {})
        }
        if cls in PERSONAL_FIELDS:  # R24: decoded with whether its personal fields were erased
            fields.add("erased")
        assert set(props["data"]["properties"]) == fields, public
        assert set(props["data"]["required"]) == fields - PII_FIELDS, public
        assert f"`{public}`" in documented


class _LockedText(io.TextIOBase):
    """``out`` for a tail running in another thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parts: list[str] = []

    def write(self, text: str) -> int:
        with self._lock:
            self._parts.append(text)
        return len(text)

    def lines(self) -> list[str]:
        with self._lock:
            return "".join(self._parts).splitlines()



def test_the_example_consumer_applies_each_event_once(relay_ledger, start_relay, kafka_broker):
    import importlib.util
    import sqlite3

    spec = importlib.util.spec_from_file_location("consume_events", SCHEMAS.parents[1] / "examples" / "consume_events.py")
    assert spec and spec.loader
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)

    full_story(relay_ledger)
    start_relay().wait_published()
    items = all_items(relay_ledger)
    messages = read_topic(kafka_broker.bootstrap, relay_ledger.settings.kafka_topic, until=ids_seen(i.id for i in items))
    db = sqlite3.connect(":memory:")
    db.executescript(example.SCHEMA)
    applied = [example.apply(db, m.event) for m in messages + messages]  # everything delivered twice
    assert sum(applied) == len(items)
    assert db.execute("SELECT received_minor, refunded_minor FROM revenue").fetchall() == [(9800, 4900)]


def test_ledger_run_broker_is_found_through_the_data_dir(fresh_ledger, start_relay, kafka_topic):
    """``ledger run`` starts the embedded broker (ensure_broker) and advertises it
    in the data dir; a relay or a tail with the same data dir and no
    LEDGER_KAFKA_BOOTSTRAP finds it there."""
    ledger = with_settings(fresh_ledger, kafka_topic=kafka_topic)
    assert ledger.settings.kafka_bootstrap is None and bootstrap_servers(ledger.settings) is None
    started = ensure_broker(ledger.settings)
    assert started is not None
    try:
        assert bootstrap_servers(ledger.settings) == started.bootstrap
        assert ensure_broker(ledger.settings) is None  # one per data dir
        full_story(ledger)
        start_relay(ledger).wait_published()
        items = all_items(ledger)
        assert_stream_sound(read_topic(started.bootstrap, kafka_topic, until=ids_seen(i.id for i in items)), items)
    finally:
        started.stop()
    assert bootstrap_servers(ledger.settings) is None
