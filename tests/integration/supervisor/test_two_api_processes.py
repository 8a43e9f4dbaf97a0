"""Scale-out: two ``ledger serve`` processes on different ports, one database.

A registration rush goes through both at once, and every request is sent a
second time, with the same Idempotency-Key, to the *other* process (a client
retrying through a load balancer).  Capacity (R9) holds across processes, each
command is done once, and a replay answers what the first answer said.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from entrypoints.bootstrap import bootstrap
from ledger import event_log
from ledger.config import DEFAULT_RATE_LIMITS
from ledger.money import Money
from tests.support.postgres import TestServer
from tests.support.settings import make_settings
from tests.support.waiting import wait_serving
from workers.broker import free_port

ROOT = Path(__file__).resolve().parents[3]
SEATS = 30
CLIENTS = 72


def _serve(url: str, data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update({
        "LEDGER_DATABASE_URL": url, "LEDGER_DATA_DIR": str(data_dir), "LEDGER_SECRET_KEY": "11" * 32,
        "LEDGER_HTTP_HOST": "127.0.0.1", "LEDGER_HTTP_PORT": str(port), "PYTHONPATH": str(ROOT),
        **{f"LEDGER_RATE_LIMIT_{name.upper()}": "1000000 per minute" for name in DEFAULT_RATE_LIMITS},
    })
    process = subprocess.Popen(
        [sys.executable, "-m", "entrypoints.cli", "serve", "--workers", "1", "--threads", "8"],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    return process, f"http://127.0.0.1:{port}"


@pytest.fixture
def two_servers(pg_server: TestServer, tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    url = pg_server.new_database()
    started = [_serve(url, tmp_path / name) for name in ("a", "b")]
    try:
        for process, base in started:
            wait_serving(process, base)
        yield url, [base for _, base in started]
    finally:
        for process, _ in started:
            process.terminate()
        for process, _ in started:
            process.wait(20)


def test_a_rush_through_two_processes_sells_each_seat_once_and_does_each_command_once(
    two_servers: tuple[str, list[str]], tmp_path: Path,
) -> None:
    url, bases = two_servers
    ledger = bootstrap(make_settings(tmp_path / "setup"), url=url)
    try:
        service = ledger.service
        org = service.register_organizer(name="Rush", country="US", plan_size=SEATS)
        service.connect_provider(str(org.id), provider="manual", masked={}, store_secrets=lambda cid: None)
        event_id = str(service.create_event(
            organizer_id=str(org.id), title="Rush", description="", timezone="UTC", permanent=False,
            sessions=[datetime(2037, 12, 1, 17, tzinfo=UTC)], price=Money.parse("10.00", "USD"), provider="manual",
        ).id)
    finally:
        ledger.close()

    def attempt(i: int) -> tuple[int, int, str | None, str | None]:
        """(first status, replay status, first id, replayed id): the replay goes
        to the other process with the same key and body."""
        key = str(uuid.uuid4())
        body = {"name": f"P{i}", "email": f"p{i}@example.com"}
        path = f"/v1/events/{event_id}/registrations"
        first = requests.post(bases[i % 2] + path, json=body, headers={"Idempotency-Key": key}, timeout=30)
        again = requests.post(bases[(i + 1) % 2] + path, json=body, headers={"Idempotency-Key": key}, timeout=30)
        first_id = first.json().get("id") if first.status_code == 201 else first.json().get("code")
        again_id = again.json().get("id") if again.status_code == 201 else again.json().get("code")
        return first.status_code, again.status_code, first_id, again_id

    with ThreadPoolExecutor(max_workers=24) as pool:
        outcomes = list(pool.map(attempt, range(CLIENTS)))

    accepted = [o for o in outcomes if o[0] == 201]
    refused = [o for o in outcomes if o[0] == 422]
    assert len(accepted) == SEATS, outcomes
    assert len(refused) == CLIENTS - SEATS, sorted({(o[0], o[2]) for o in outcomes if o[0] != 201})
    assert all(o[2] == "capacity_exhausted" for o in refused)
    # The retry through the other process answers exactly what the first did.
    assert all(first == again and first_id == again_id for first, again, first_id, again_id in outcomes)
    ledger = bootstrap(make_settings(tmp_path / "check"), url=url)
    try:
        registered = [item for item in event_log.read(ledger.store, after=0, limit=10_000, types=["ParticipantRegistered"])
                      if item.data.get("event_id") == event_id]
    finally:
        ledger.close()
    assert len(registered) == SEATS
    assert sorted(item.aggregate_id for item in registered) == sorted(str(o[2]) for o in accepted)
