"""``ledger serve`` in a process group of its own, killed with SIGKILL by tests.

The real entry point (``python -m entrypoints.cli serve``: gunicorn, one
worker process with threads) against a test database; ``kill()`` sends
SIGKILL to the whole group (master and worker), as a crashed host would.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    def __init__(self, database_url: str, data_dir: Path, log: Path, *, threads: int = 20, **env: str) -> None:
        self.database_url, self.data_dir, self.log_path = database_url, data_dir, log
        self.threads, self.env = threads, env
        self.proc: subprocess.Popen[bytes] | None = None
        self.base_url = ""
        self.starts = 0

    def start(self) -> None:
        port = free_port()
        env = {
            **os.environ, "PYTHONPATH": str(ROOT),
            "LEDGER_DATABASE_URL": self.database_url, "LEDGER_DATA_DIR": str(self.data_dir),
            "LEDGER_SECRET_KEY": "11" * 32, "LEDGER_HTTP_HOST": "127.0.0.1", "LEDGER_HTTP_PORT": str(port),
            **self.env,
        }
        with self.log_path.open("ab") as log:
            # A rollout: `ledger migrate`, then `ledger serve` (which only checks the version).
            subprocess.run([sys.executable, "-m", "entrypoints.cli", "migrate"], cwd=ROOT, env=env, stdout=log,
                           stderr=subprocess.STDOUT, check=True, timeout=120)
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "entrypoints.cli", "serve", "--workers", "1", "--threads", str(self.threads)],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.base_url = f"http://127.0.0.1:{port}"
        self.starts += 1
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{self.base_url}/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"ledger serve did not start; see {self.log_path}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL to the master and its worker at once; nothing runs after it."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
        self.proc = None
