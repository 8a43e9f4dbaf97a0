"""SIGKILL the relay at random points, round after round, while commands keep
coming: nothing is lost, order per aggregate holds, and the only duplicates
are each killed relay's un-acknowledged tail (at most ``max_in_flight``
batches above the position it had recorded)."""

from __future__ import annotations

import bisect
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from ledger.container import Ledger
from ledger.money import Money
from tests.integration.relay.scenario import busy_event, full_story
from tests.support.kafka import ids_seen, read_topic
from tests.support.relay import all_items, assert_stream_sound
from workers.relay import Positions

ROOT = Path(__file__).resolve().parents[3]
BATCH, IN_FLIGHT = 20, 4  # relay_process.py runs with max_in_flight=4
ROUNDS = 6


class Writer(threading.Thread):
    """Keeps paying registrations coming, as the API would."""

    def __init__(self, ledger: Ledger) -> None:
        super().__init__(daemon=True)
        self.ledger, self.stop = ledger, threading.Event()
        first_registration = busy_event(ledger, registrations=1)[0]
        self.event_id = ledger.service.registration(first_registration).event_id
        self.error: BaseException | None = None

    def run(self) -> None:
        service, n = self.ledger.service, 0
        try:
            while not self.stop.is_set():
                reg = service.register_participant(self.event_id, name=f"W{n}", email=f"w{n}@x.org", fields={})
                service.record_payment(str(reg.id), amount=Money(1000, "USD"), provider="manual", reference=f"w{n}")
                n += 1
        except BaseException as error:
            self.error = error


def spawn(ledger: Ledger, data_dir: Path) -> subprocess.Popen[bytes]:
    settings = ledger.settings
    return subprocess.Popen(
        [sys.executable, "-m", "tests.integration.relay.relay_process", ledger.database_url, str(data_dir),
         settings.kafka_topic, str(settings.kafka_bootstrap), str(BATCH)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


@pytest.mark.slow
def test_sigkill_at_random_points_loses_nothing(relay_ledger, start_relay, kafka_broker, tmp_path):
    rng = random.Random(os.environ.get("RELAY_CRASH_SEED") or time.time_ns())
    topic = relay_ledger.settings.kafka_topic
    positions = Positions(relay_ledger)
    full_story(relay_ledger)
    writer = Writer(relay_ledger)
    writer.start()
    recorded: list[int] = []  # the position each killed relay had recorded
    try:
        for _ in range(ROUNDS):
            before = positions.get(topic)[0]
            process = spawn(relay_ledger, tmp_path)
            if rng.random() < 0.25:  # while starting up / first batches
                time.sleep(rng.uniform(0.3, 1.5))
            else:  # in the middle of the stream, a random distance ahead
                target = before + rng.randint(1, 6 * BATCH)
                deadline = time.monotonic() + 15
                while positions.get(topic)[0] < target and time.monotonic() < deadline:
                    time.sleep(0.002)
                time.sleep(rng.uniform(0, 0.02))
            process.kill()
            process.wait()
            recorded.append(positions.get(topic)[0])
            time.sleep(rng.uniform(0, 0.3))  # commands pile up while no relay runs
    finally:
        writer.stop.set()
        writer.join(10)
    assert writer.error is None, writer.error
    assert recorded[-1] > recorded[0], f"the relays made no progress: {recorded}"

    relay = start_relay()  # a last, uninterrupted relay drains the rest
    relay.wait_published(timeout=30)
    items = all_items(relay_ledger)
    messages = read_topic(kafka_broker.bootstrap, topic, until=ids_seen(i.id for i in items), timeout=30)
    relay.stop()
    assert_stream_sound(messages, items)

    # A killed relay may have sent, unrecorded, the next IN_FLIGHT batches
    # after its recorded mark: those events (and only those) may come twice.
    # Counted in events, not positions: positions may have gaps (rolled-back inserts).
    ordered = [item.position for item in items]
    copies = Counter(m.event["position"] for m in messages)
    for position, count in copies.items():
        rank = bisect.bisect_left(ordered, position)
        may_resend = sum(1 for mark in recorded if 0 <= rank - bisect.bisect_right(ordered, mark) < BATCH * IN_FLIGHT)
        assert count - 1 <= may_resend, (position, count, recorded)
    duplicates = sum(copies.values()) - len(copies)
    print(f"{len(items)} events, {ROUNDS} kills at {recorded}, {duplicates} re-sent")
