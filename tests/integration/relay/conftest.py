"""Relay fixtures: a fresh ledger wired to the session broker and a topic of its
own, and relays running in threads (stopped at teardown).  The checks on what a
consumer reads back are in tests/support/relay.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from ledger.container import Ledger
from tests.support.relay import TEST_OPTIONS, RunningRelay, with_settings
from workers.broker import EmbeddedBroker
from workers.relay import RelayOptions


@pytest.fixture
def relay_ledger(fresh_ledger: Ledger, kafka_broker: EmbeddedBroker, kafka_topic: str) -> Ledger:
    """``fresh_ledger`` whose settings point at the test broker and topic."""
    return with_settings(fresh_ledger, kafka_bootstrap=kafka_broker.bootstrap, kafka_topic=kafka_topic)


@pytest.fixture
def start_relay(relay_ledger: Ledger) -> Iterator[Callable[..., RunningRelay]]:
    running: list[RunningRelay] = []

    def start(ledger: Ledger = relay_ledger, options: RelayOptions = TEST_OPTIONS) -> RunningRelay:
        relay = RunningRelay(ledger, options)
        running.append(relay)
        return relay

    yield start
    for relay in running:
        relay.stop_event.set()
    for relay in running:
        relay.thread.join(5)
