"""The broker goes away and comes back *empty* (the embedded broker keeps
everything in memory): the API keeps accepting commands, the relay records
nothing it was not acknowledged for, notices the new topic and republishes the
whole log into it, so a consumer of the new broker misses nothing."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from ledger.money import Money
from tests.integration.relay.scenario import busy_event, full_story
from tests.support.kafka import ids_seen, read_topic
from tests.support.relay import TEST_OPTIONS, all_items, assert_stream_sound, validators, with_settings
from workers.broker import EmbeddedBroker
from workers.relay import Positions


@pytest.mark.slow
def test_broker_down_then_restarted_empty_mid_stream(relay_ledger, start_relay, kafka_broker):
    topic = relay_ledger.settings.kafka_topic
    positions = Positions(relay_ledger)
    relay = start_relay()
    full_story(relay_ledger)
    relay.wait_published()
    published_before = relay.worker.published

    # 1. Broker down: commands are still accepted; nothing is marked published.
    kafka_broker.stop()
    busy_event(relay_ledger, registrations=10)
    time.sleep(1.0)
    assert relay.thread.is_alive()
    assert positions.get(topic)[0] == published_before

    # 2. It comes back empty, while commands keep streaming in.
    stop_writing = threading.Event()
    event_id = relay_ledger.service.registration(busy_event(relay_ledger, registrations=1)[0]).event_id

    failed: list[BaseException] = []

    def write() -> None:
        n = 0
        try:
            while not stop_writing.is_set():
                reg = relay_ledger.service.register_participant(event_id, name="R", email=f"r{n}@x.org", fields={})
                relay_ledger.service.record_payment(
                    str(reg.id), amount=Money(1000, "USD"), provider="manual", reference=f"r{n}"
                )
                n += 1
        except BaseException as exc:  # a writer that stopped early fails the test, not only warns
            failed.append(exc)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    kafka_broker.restart()
    time.sleep(0.5)
    # 3. ... and once more, now with the relay busy republishing.
    kafka_broker.restart()
    time.sleep(0.5)
    stop_writing.set()
    writer.join(10)
    assert not failed, failed

    relay.wait_published(timeout=30)
    _, _, resets = positions.get(topic)
    assert resets >= 1
    items = all_items(relay_ledger)
    messages = read_topic(kafka_broker.bootstrap, topic, until=ids_seen(i.id for i in items), timeout=30)
    assert_stream_sound(messages, items)  # events from before the restarts are back too
    checks = validators()
    for message in messages:
        checks[message.event["type"]].validate(message.event)
    assert min(m.event["position"] for m in messages) == 1


def test_stops_promptly_when_the_broker_vanishes_mid_stream(fresh_ledger, start_relay, kafka_topic):
    broker = EmbeddedBroker().start()
    ledger = with_settings(fresh_ledger, kafka_bootstrap=broker.bootstrap, kafka_topic=kafka_topic)
    busy_event(ledger, registrations=150)
    relay = start_relay(ledger, dataclasses.replace(TEST_OPTIONS, batch_size=20))
    try:
        deadline = time.monotonic() + 20
        while relay.worker.published == 0:
            assert time.monotonic() < deadline
            time.sleep(0.001)
        broker.kill()
        recorded = Positions(ledger).get(kafka_topic)[0]
        time.sleep(0.3)
        assert relay.stop() < 1.5
        assert Positions(ledger).get(kafka_topic)[0] >= recorded  # never goes back
    finally:
        broker.stop()
