"""The real broker for tests: one embedded Tansu per test session.

Loaded by tests/conftest.py.  Tests use a topic of their own (``kafka_topic``)
so that they never see each other's messages, and read a topic back with
``read_topic`` (plain partition assignment: no consumer group, so no JoinGroup
wait).  ``kafka_broker.restart()`` gives an *empty* broker on the same port.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from workers.broker import EmbeddedBroker, describe

#: Tansu's JoinGroup waits session_timeout_ms / 2: short timeouts, tests only.
TEST_GROUP_OPTIONS = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 500}


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """The session's broker: ``.bootstrap``, ``.stop()``, ``.restart()``."""
    broker = EmbeddedBroker(log_path=tmp_path_factory.mktemp("tansu") / "tansu.log").start()
    yield broker
    broker.stop()


@pytest.fixture
def kafka_topic() -> str:
    return f"ledger.test.{uuid.uuid4().hex[:10]}"


@dataclass(frozen=True)
class Message:
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]

    @property
    def event(self) -> dict[str, Any]:
        decoded: dict[str, Any] = json.loads(self.value)
        return decoded


def read_topic(
    bootstrap: str, topic: str, *, until: Callable[[list[Message]], bool], timeout: float = 20.0,
) -> list[Message]:
    """Every message of ``topic`` from the beginning, in partition order, until
    ``until(messages)`` holds (or fail after ``timeout`` seconds)."""
    from kafka import KafkaConsumer, TopicPartition

    wait_for_topic(bootstrap, topic, timeout=timeout)
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest",
        allow_auto_create_topics=False, consumer_timeout_ms=500,
    )
    try:
        deadline = time.monotonic() + timeout
        partitions = None
        while partitions is None:
            partitions = consumer.partitions_for_topic(topic)
            if partitions is None:
                assert time.monotonic() < deadline, f"topic {topic} never appeared"
                time.sleep(0.1)
        consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
        consumer.seek_to_beginning()
        messages: list[Message] = []
        while not until(messages):
            assert time.monotonic() < deadline, f"only {len(messages)} messages after {timeout}s"
            for records in consumer.poll(timeout_ms=200).values():
                messages.extend(
                    Message(r.partition, r.offset, r.key, r.value, {k: v for k, v in r.headers})
                    for r in records
                )
        return messages
    finally:
        consumer.close()


def wait_for_topic(bootstrap: str, topic: str, *, timeout: float = 20.0) -> None:
    """Wait until the relay created ``topic``, without naming it in a metadata
    request (Tansu would auto-create it with its default partition count)."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        deadline = time.monotonic() + timeout
        while not describe(admin, topic).exists:
            assert time.monotonic() < deadline, f"topic {topic} never appeared"
            time.sleep(0.05)
    finally:
        admin.close()


def ids_seen(ids: Iterable[str]) -> Callable[[list[Message]], bool]:
    """``until`` for read_topic: every one of ``ids`` has arrived."""
    wanted = set(ids)
    return lambda messages: wanted <= {m.event["id"] for m in messages}
