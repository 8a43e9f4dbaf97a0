"""Issue 11 item 1: ``kill -9`` of the whole ``ledger run`` process group under
write load, then restart — every restart ready within 30 s, nothing
acknowledged lost.

The first release wedged about one restart in four: every process start ran
all the DDL (ACCESS EXCLUSIVE on ``ledger_events``) while the notify planner
held a transaction and waited on an event-store read behind that lock.  Now
``ledger run`` migrates once before it starts anything, processes only check
the schema version, every session has lock and idle-transaction timeouts, and
the planner reads before its transaction opens.

Each round: start ``ledger run`` (own process group, own data dir, free port),
wait for ``/healthz`` and ``/readyz``, let two client threads register
participants and record their payments through the HTTP API for a random
moment, then SIGKILL the group.  Every fifth start is also killed at a random
moment *during* start-up (migrations, forks) before the measured restart, and
every tenth round kills the embedded PostgreSQL server too (it otherwise
survives in its own session and the restart attaches to it).  At the end
every registration answered 201 must exist, every payment answered 200 must be
recorded, and both must reach the views (who paid) and the notify planner
(one confirmation each).
"""

from __future__ import annotations

import random
import statistics
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests

from tests.support.ledger_run import LedgerRun, NotReady
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

ROUNDS = 20
READY_WITHIN = 30.0
LOAD_THREADS = 2


class Load:
    """Clients registering and paying through the API, recording exactly what
    the server acknowledged."""

    def __init__(self, base_url: str, event_id: str, org_headers: dict[str, str]) -> None:
        self.base_url, self.event_id, self.org_headers = base_url, event_id, org_headers
        self.registered: list[str] = []  # 201 answers
        self.paid: list[str] = []  # 200 answers to the payment
        self.refused: Counter[str] = Counter()  # everything else, by status or error type
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(LOAD_THREADS)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)

    def _post(self, session: requests.Session, path: str, body: dict[str, Any], **headers: str) -> Any:
        try:
            return session.post(f"{self.base_url}{path}", json=body, headers=headers, timeout=10)
        except requests.RequestException as exc:
            with self._lock:
                self.refused[type(exc).__name__] += 1
            self._stop.wait(0.05)  # restarting: try again shortly
            return None

    def _run(self, n: int) -> None:
        session = requests.Session()
        i = 0
        while not self._stop.is_set():
            i += 1
            r = self._post(session, f"/v1/events/{self.event_id}/registrations",
                           {"name": f"P {n}-{i}", "email": f"p{n}-{i}@example.com"})
            if r is None:
                continue
            if r.status_code != 201:
                with self._lock:
                    self.refused[f"register {r.status_code}"] += 1
                continue
            rid = r.json()["id"]
            with self._lock:
                self.registered.append(rid)
            r = self._post(session, f"/v1/registrations/{rid}/payments",
                           {"amount": {"amount": "49.00", "currency": "USD"}, "reference": f"bank-{rid}"},
                           **self.org_headers)
            if r is not None and r.status_code == 200:
                with self._lock:
                    self.paid.append(rid)
            elif r is not None:
                with self._lock:
                    self.refused[f"pay {r.status_code}"] += 1


def _setup(run: LedgerRun) -> tuple[str, dict[str, str]]:
    """An organizer with a manual provider and one big event; (event id, organizer headers)."""
    made = run.cli("token", "create", "--role", "admin")
    assert made.returncode == 0, made.stderr
    admin = {"Authorization": f"Bearer {made.stdout.strip()}"}
    api = run.base_url

    def post(path: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
        r = requests.post(f"{api}{path}", json=body, headers=headers, timeout=10)
        assert r.status_code == 201, (path, r.status_code, r.text)
        return r.json()

    org = post("/v1/organizers", {"name": "Load", "country": "US", "plan_size": 100_000}, admin)["id"]
    token = post("/v1/tokens", {"role": "organizer", "organizer_id": org}, admin)["token"]
    headers = {"Authorization": f"Bearer {token}"}
    post(f"/v1/organizers/{org}/providers", {"provider": "manual"}, headers)
    event = post("/v1/events", {"title": "Kill -9", "starts_at": "2037-12-01T18:00:00+01:00", "permanent": False,
                                "price": {"amount": "49.00", "currency": "USD"}, "provider": "manual"}, headers)
    return event["id"], headers


def _sessions(run: LedgerRun) -> str:
    """What the database's sessions are doing (for a failure message)."""
    try:
        with psycopg.connect(run.database_url(), connect_timeout=5) as conn:
            rows = conn.execute(
                "SELECT state, wait_event_type, wait_event, count(*), max(now() - xact_start)::text,"
                " left(max(query), 120) FROM pg_stat_activity WHERE backend_type = 'client backend'"
                " GROUP BY 1, 2, 3 ORDER BY 4 DESC").fetchall()
        return "\n".join(map(str, rows))
    except Exception as exc:
        return f"cannot look: {exc}"


def _tail(path: Path, lines: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def test_kill9_of_the_group_under_load_restarts_ready_and_loses_nothing(tmp_path: Path) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    run = LedgerRun(tmp_path / "data")
    log_path = tmp_path / "ledger-run.log"
    began = time.monotonic()
    ready_times: list[float] = []
    early_kills = server_kills = 0
    load: Load | None = None
    try:
        with log_path.open("ab") as log:

            def start_ready() -> float:
                run.start(stdout=log, stderr=log)
                try:
                    return run.wait_ready(READY_WITHIN)
                except NotReady as exc:
                    processes = subprocess.run(["ps", "-eo", "pid,pgid,stat,etimes,args"], capture_output=True,
                                               text=True).stdout
                    ours = "\n".join(line for line in processes.splitlines() if str(run.data_dir) in line
                                     or "entrypoints.cli" in line)
                    sessions = _sessions(run)
                    run.dump_stacks()
                    raise AssertionError(f"seed {seed}, round {len(ready_times) + 1}: {exc}\n"
                                         f"--- ledger run:\n{_tail(log_path, 100)}\n--- processes:\n{ours}\n"
                                         f"--- sessions:\n{sessions}\n"
                                         f"--- PostgreSQL:\n{_tail(run.data_dir / 'pg' / 'log', 40)}") from exc

            ready_times.append(start_ready())
            event_id, org_headers = _setup(run)
            load = Load(run.base_url, event_id, org_headers)
            load.start()
            for round_no in range(1, ROUNDS + 1):
                time.sleep(rng.uniform(0.2, 1.5))  # load against a ready ledger
                run.kill9()
                if round_no % 10 == 0:
                    run.kill_postmaster()  # the restart must start the server again
                    server_kills += 1
                if round_no % 5 == 0:  # killed again while it starts up
                    run.start(stdout=log, stderr=log)
                    time.sleep(rng.uniform(0.2, 3.0))
                    run.kill9()
                    early_kills += 1
                ready_times.append(start_ready())
            load.stop()

            # Nothing acknowledged is lost: in the event store ...
            registered, paid = set(load.registered), set(load.paid)
            assert len(registered) == len(load.registered) and registered
            for rid in registered:
                r = requests.get(f"{run.base_url}/v1/registrations/{rid}", headers=org_headers, timeout=10)
                assert r.status_code == 200, (rid, r.status_code, r.text)
                if rid in paid:  # (a payment whose answer was cut off may be recorded too)
                    assert r.json()["status"] == "paid", r.json()
            # ... in the views and in the notify planner's outbox.
            with psycopg.connect(run.database_url()) as conn:
                def caught_up() -> bool:
                    in_views = conn.execute("SELECT count(*) FROM projections.who_paid"
                                            " WHERE registration_id::text = ANY(%s)", (list(registered),)).fetchone()
                    planned = conn.execute("SELECT count(*) FROM notify_outbox WHERE dedupe_key = ANY(%s)",
                                           ([f"confirmation:{rid}" for rid in paid],)).fetchone()
                    conn.rollback()
                    return in_views == (len(registered),) and planned == (len(paid),)

                wait_until(caught_up, timeout=60, what="the views and the notify planner to catch up")
    finally:
        if load is not None:
            load.stop()
        run.cleanup()
    took = time.monotonic() - began
    assert len(ready_times) == ROUNDS + 1 and max(ready_times) < READY_WITHIN
    print(  # the figures for the issue (pytest -s shows them)
        f"\nkill -9 restart: seed {seed}, {ROUNDS} rounds (+{early_kills} kills during start-up, "
        f"{server_kills} with the database server), ready max {max(ready_times):.1f} s, "
        f"median {statistics.median(ready_times):.1f} s, total {took:.0f} s; "
        f"{len(registered)} registrations and {len(paid)} payments acknowledged and verified; "
        f"refused or cut off: {dict(load.refused) if load else {}}"
    )
