"""Exactly-once under crash: SIGKILL the runner mid-batch (deterministically,
inside the transaction after the view writes, and at random moments), restart
it, and compare the views with a rebuild from position 0."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from ledger import event_log
from ledger.container import Ledger
from projections import runner
from projections.rebuild import rebuild
from projections.runner import ProjectionRunner
from tests.integration.projections.history import snapshot, write_bulk

ROOT = Path(__file__).resolve().parents[3]


def spawn(ledger: Ledger, tmp_path: Path, batch: int, mode: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.projections.projection_process", ledger.database_url,
         str(tmp_path / "runner"), str(batch), mode],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "READY"
    return process


def kill(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)


def rows_in_view(ledger: Ledger) -> int:
    with ledger.db.transaction() as conn:
        found = conn.execute("SELECT count(*) FROM projections.who_paid").fetchone()
    assert found is not None
    return int(found[0])


def test_sigkill_mid_batch_neither_skips_nor_doubles(fresh_ledger: Ledger, tmp_path: Path) -> None:
    write_bulk(fresh_ledger, 3000)  # ~15,000 events
    rng = random.Random(5)

    # 1. Killed inside the transaction, after its view writes: nothing of it stays.
    for _ in range(2):
        committed, rows = runner.status(fresh_ledger).position, rows_in_view(fresh_ledger)
        process = spawn(fresh_ledger, tmp_path, 700, "pause")
        assert process.stdout is not None
        inside = process.stdout.readline().split()
        assert inside[0] == "INSIDE" and int(inside[1]) == committed < int(inside[2]), inside
        kill(process)
        assert runner.status(fresh_ledger).position == committed  # rolled back, not half-applied
        assert rows_in_view(fresh_ledger) == rows
        ProjectionRunner(fresh_ledger, batch_size=700).step()  # some progress before the next kill
        assert runner.status(fresh_ledger).position > committed

    # 2. Killed at random moments while catching up, then restarted to the end.
    positions = []
    for _ in range(3):
        process = spawn(fresh_ledger, tmp_path, 40, "run")
        time.sleep(rng.uniform(0.05, 0.3))
        kill(process)
        positions.append(runner.status(fresh_ledger).position)
    assert positions == sorted(positions), positions
    process = spawn(fresh_ledger, tmp_path, 300, "run")
    deadline = time.monotonic() + 60
    while runner.lag(fresh_ledger) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.terminate()
    process.wait(timeout=10)
    assert runner.lag(fresh_ledger) == 0
    assert positions[0] < event_log.head(fresh_ledger.store)

    survived = snapshot(fresh_ledger)
    rebuild(fresh_ledger)
    assert snapshot(fresh_ledger) == survived
