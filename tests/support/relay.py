"""Relays in threads for the relay tests (tests/integration/relay/), and the
checks every relay test makes on what a consumer reads back."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from ledger import event_log
from ledger.container import Ledger
from tests.support.kafka import Message
from workers.relay import RelayOptions, RelayWorker

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"

#: Small batches so that tests exercise many batches and in-flight windows.
TEST_OPTIONS = RelayOptions(batch_size=50, max_in_flight=4, check_interval=0.3, backoff_max=0.5)


def with_settings(ledger: Ledger, **changes: Any) -> Ledger:
    return dataclasses.replace(ledger, settings=dataclasses.replace(ledger.settings, **changes))


class RunningRelay:
    def __init__(self, ledger: Ledger, options: RelayOptions) -> None:
        self.ledger = ledger
        self.worker = RelayWorker(ledger, options)
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.worker.run, args=(self.stop_event,), daemon=True)
        self.thread.start()

    def wait_published(self, position: int | None = None, timeout: float = 20.0) -> None:
        """Until the broker acknowledged everything up to ``position`` (default:
        the ledger's head)."""
        target = event_log.head(self.ledger.store) if position is None else position
        deadline = time.monotonic() + timeout
        while self.worker.published < target:
            assert self.thread.is_alive(), "the relay died"
            assert time.monotonic() < deadline, f"published {self.worker.published} of {target}"
            time.sleep(0.01)

    def stop(self, timeout: float = 5.0) -> float:
        started = time.monotonic()
        self.stop_event.set()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the relay did not stop"
        return time.monotonic() - started


def all_items(ledger: Ledger) -> list[event_log.LogItem]:
    return event_log.read(ledger.store, after=0, limit=1_000_000)


def validators() -> dict[str, Draft202012Validator]:
    found = {}
    for path in SCHEMAS.glob("*.json"):
        schema = json.loads(path.read_text())
        Draft202012Validator.check_schema(schema)
        found[path.stem] = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    return found


def first_copies(messages: list[Message]) -> list[dict[str, Any]]:
    """Each event once, at its first occurrence (what a de-duplicating consumer keeps)."""
    seen: set[str] = set()
    events = []
    for message in messages:
        event = message.event
        if event["id"] not in seen:
            seen.add(event["id"])
            events.append(event)
    return events


def assert_stream_sound(messages: list[Message], items: list[event_log.LogItem]) -> None:
    """Every stored event arrived; each aggregate's events, de-duplicated, come
    1, 2, 3… in one partition under its key; headers match the envelope."""
    by_id = {item.id: item for item in items}
    received = {m.event["id"] for m in messages}
    assert received == set(by_id), f"missing {len(set(by_id) - received)}, foreign {len(received - set(by_id))}"
    partition_of: dict[str, int] = {}
    for message in messages:
        event = message.event
        assert message.key == event["aggregate_id"].encode()
        assert partition_of.setdefault(event["aggregate_id"], message.partition) == message.partition
        assert message.headers["event-id"] == event["id"].encode()
        assert message.headers["event-type"] == event["type"].encode()
        assert message.headers["content-type"] == b"application/json"
        assert event["position"] == by_id[event["id"]].position
    versions: dict[str, int] = {}
    for event in first_copies(messages):
        expected = versions.get(event["aggregate_id"], 0) + 1
        assert event["aggregate_version"] == expected, f"{event['aggregate_id']} out of order"
        versions[event["aggregate_id"]] = expected
