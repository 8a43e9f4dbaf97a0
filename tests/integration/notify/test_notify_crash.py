"""One e-mail per fact across a worker killed with SIGKILL and restarted.

The worker runs as ``build(ledger).run(stop)`` in a child process against the
test's database and SMTP server.  Killing it while the SMTP server has accepted
a message but not yet answered ``250`` is the one window where a duplicate is
allowed (docs/emails.md): it must be the same message — same Message-ID, same
bytes — and no fact may end up with zero e-mails.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.notify_world import World
from tests.support.smtp import SmtpTestServer
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

WORKER = """
import signal, sys, threading
from entrypoints.bootstrap import bootstrap
from ledger.config import Settings
from workers.notify import build

ledger = bootstrap(Settings.from_env(), pool_size=4)
worker = build(ledger)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
print("ready", flush=True)
worker.run(stop)
ledger.close()
"""

ROOT = Path(__file__).resolve().parents[3]


class WorkerProcess:
    def __init__(self, world: World, smtp_url: str) -> None:
        settings = world.ledger.settings
        self.env = {
            **os.environ,
            "LEDGER_DATABASE_URL": world.ledger.database_url,
            "LEDGER_DATA_DIR": str(settings.data_dir),
            "LEDGER_SECRET_KEY": settings.secret_key.hex(),
            "LEDGER_PUBLIC_URL": settings.public_url,
            "LEDGER_SMTP_URL": smtp_url,
        }
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", WORKER], env=self.env, cwd=ROOT,
                                        stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "ready"

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def terminate(self) -> float:
        """SIGTERM → ``stop`` is set; return how long the worker took to exit."""
        assert self.process is not None
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(10) == 0
        return time.monotonic() - started

    def cleanup(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def worker_process(world: World, smtp_server: SmtpTestServer) -> Iterator[WorkerProcess]:
    process = WorkerProcess(world, smtp_server.url)
    yield process
    process.cleanup()


def all_sent(world: World, expected: int) -> bool:
    rows = world.outbox()
    return len(rows) == expected and all(r["state"] == "sent" for r in rows)


def test_killed_between_smtp_accept_and_its_record_resends_the_same_message(
    world: World, smtp_server: SmtpTestServer, worker_process: WorkerProcess
) -> None:
    org = world.organizer()
    ev = world.event(org)
    registrations = [world.register(ev, f"p{i}@example.com") for i in range(4)]
    in_flight = smtp_server.stall_after(2, seconds=30)  # accept #2, hold back the 250

    worker_process.start()
    for rid in registrations[:3]:
        world.pay(rid)
    assert in_flight.wait(15), "the second e-mail never reached the server"
    worker_process.kill()  # SIGKILL: after the server took #2, before the worker recorded it
    world.pay(registrations[3])  # a fact while no worker runs
    worker_process.start()
    wait_until(lambda: all_sent(world, 4), timeout=20, what="every e-mail to be sent")
    mails = smtp_server.settle()
    assert worker_process.terminate() < 2.0

    per_id = Counter(m.message_id for m in mails)
    assert len(per_id) == 4  # one distinct e-mail per fact, none lost
    duplicated = [mid for mid, n in per_id.items() if n > 1]
    assert duplicated == [mails[1].message_id] and per_id[mails[1].message_id] == 2
    copies = [m.raw for m in mails if m.message_id == mails[1].message_id]
    assert copies[0] == copies[1]  # the re-send is byte-for-byte the same e-mail
    for i in range(len(registrations)):
        assert len({m.message_id for m in smtp_server.to(f"p{i}@example.com")}) == 1


def test_random_kills_during_a_burst_lose_nothing(
    world: World, smtp_server: SmtpTestServer, worker_process: WorkerProcess
) -> None:
    org = world.organizer()
    ev = world.event(org)
    registrations = [world.register(ev, f"b{i}@example.com") for i in range(12)]

    def pay_all() -> None:
        for rid in registrations:
            world.pay(rid)
            time.sleep(0.02)

    payer = threading.Thread(target=pay_all)
    rng = random.Random(6)  # seeded: a failure is reproducible
    worker_process.start()
    payer.start()
    kills = 0
    for _ in range(2):
        time.sleep(rng.uniform(0.05, 0.3))
        worker_process.kill()
        kills += 1
        worker_process.start()
    payer.join()
    wait_until(lambda: all_sent(world, 12), timeout=20, what="every e-mail to be sent")
    mails = smtp_server.settle()
    per_id = Counter(m.message_id for m in mails)
    assert len(per_id) == 12
    assert sum(per_id.values()) - 12 <= kills  # at most the in-flight message per kill
    assert world.position() > 0
