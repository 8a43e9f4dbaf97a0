"""Where a registration's CPU goes: cProfile over registrations through the
real Flask app (test client, no network), on a real PostgreSQL.

Prints the CPU per command (process time / commands), the wall time per
command, and the top functions by own time and by cumulative time.  The table
in docs/performance.md comes from this script.

Usage: .venv/bin/python bench/profile_commands.py [--commands 2000] [--top 25]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.app import create_app  # noqa: E402
from entrypoints.bootstrap import bootstrap  # noqa: E402
from ledger.config import Settings  # noqa: E402
from ledger.money import Money  # noqa: E402
from tests.support.postgres import TestServer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--commands", type=int, default=2000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--dump", help="also write the raw profile here (for pstats / snakeviz)")
    args = parser.parse_args()
    url = TestServer().new_database("profile")
    tmp = Path(tempfile.mkdtemp(prefix="ledger-profile-"))
    ledger = bootstrap(Settings.from_env({"LEDGER_DATA_DIR": str(tmp), "LEDGER_SECRET_KEY": "22" * 32,
                                          "LEDGER_RATE_LIMIT_REGISTRATION": "off"}), url=url)
    service = ledger.service
    org = service.register_organizer(name="Bench", country="US", plan_size=1_000_000)
    service.connect_provider(str(org.id), provider="manual", masked={}, store_secrets=lambda cid: None)
    paths = [
        f"/v1/events/{service.create_event(organizer_id=str(org.id), title=f'E{i}', description='', timezone='UTC', permanent=False, sessions=[datetime(2037, 12, 1, tzinfo=UTC)], price=Money.parse('10.00', 'USD'), provider='manual').id}/registrations"  # noqa: E501
        for i in range(200)
    ]
    client = create_app(ledger).test_client()
    def body(i: int) -> dict[str, str]:  # a new person each time: the same address again is a duplicate
        return {"name": "Ada", "email": f"ada+{i}@example.com"}

    for i in range(200):  # warm caches and pools, as a running server has
        assert client.post(paths[i % len(paths)], json=body(-1 - i)).status_code == 201
    profiler = cProfile.Profile(time.process_time)  # CPU only: waits on PostgreSQL do not count
    wall, cpu = time.perf_counter(), time.process_time()
    profiler.enable()
    for i in range(args.commands):
        response = client.post(paths[i % len(paths)], json=body(i))
        assert response.status_code == 201, response.get_data(as_text=True)
    profiler.disable()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    ledger.close()
    print(f"{args.commands} registrations (profiled): {cpu / args.commands * 1000:.2f} ms CPU, "
          f"{wall / args.commands * 1000:.2f} ms wall per command")
    stats = pstats.Stats(profiler)
    if args.dump:
        stats.dump_stats(args.dump)
    stats.sort_stats("tottime").print_stats(args.top)
    stats.sort_stats("cumulative").print_stats(args.top)


if __name__ == "__main__":
    main()
