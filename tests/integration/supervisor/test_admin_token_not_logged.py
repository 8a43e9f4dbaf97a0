"""Issue 11 item 10: the admin token ``ledger run`` shows goes to the person at
the terminal, never into a log file.

Run with its output in a file (``ledger run > run.log 2>&1``, nohup, a service
manager's journal) it shows no token and says how to make one; run at a
terminal it shows a working one; either way the token is in no file of the
data dir and in no log stream.
"""

from __future__ import annotations

import os
import pty
import re
import select
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.ledger_run import LedgerRun
from tests.support.waiting import wait_until

TOKEN = re.compile(rb"ldg_[A-Za-z0-9_-]{20,}")


def _read_until(fd: int, marker: bytes, timeout: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {marker!r} on the terminal; saw {seen!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            seen += os.read(fd, 4096)
    return seen


def _files_containing(root: Path, secret: bytes) -> list[str]:
    return [str(path) for path in root.rglob("*") if path.is_file() and secret in path.read_bytes()]


@pytest.fixture
def ledger_run(tmp_path: Path) -> Iterator[LedgerRun]:
    run = LedgerRun(tmp_path / "data", PYTHONUNBUFFERED="1")  # a line reaches the log at once
    yield run
    run.cleanup()


def test_output_into_a_log_file_shows_no_token(ledger_run: LedgerRun, tmp_path: Path) -> None:
    log_path = tmp_path / "run.log"
    with log_path.open("wb") as log:
        ledger_run.start(stdout=log, stderr=log)
        ledger_run.wait_ready(60)
        wait_until(lambda: b"Press Ctrl-C" in log_path.read_bytes(), what="the banner in run.log")
    ledger_run.kill9()
    logged = log_path.read_bytes()
    assert b"Ledger API:" in logged
    assert TOKEN.search(logged) is None, "the admin token was written into the log file"
    assert b"ledger token create --role admin" in logged
    assert _files_containing(ledger_run.data_dir, b"ldg_") == []


def test_at_a_terminal_the_token_is_shown_and_nowhere_else(ledger_run: LedgerRun, tmp_path: Path) -> None:
    terminal, stdout = pty.openpty()
    err_path = tmp_path / "stderr.log"
    try:
        with err_path.open("wb") as err:
            ledger_run.start(stdout=stdout, stderr=err)
            os.close(stdout)
            shown = _read_until(terminal, b"Press Ctrl-C", timeout=60)
            found = TOKEN.search(shown)
            assert found is not None, shown
            token = found.group().decode()
            ledger_run.wait_ready(60)
            created = requests.post(f"{ledger_run.base_url}/v1/organizers", timeout=10,
                                    json={"name": "Acme", "country": "PL", "plan_size": 5},
                                    headers={"Authorization": f"Bearer {token}"})
            assert created.status_code == 201, created.text  # a real admin token
        ledger_run.kill9()
    finally:
        os.close(terminal)
    assert b"Database schema: version" in err_path.read_bytes()  # the log stream was captured
    assert _files_containing(tmp_path, token.encode()) == []
