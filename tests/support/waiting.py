"""Polling until something asynchronous (a worker thread, a server) has happened."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import Any

import requests


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """``predicate()``'s first truthy value, polled every 50 ms; an
    AssertionError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def wait_serving(process: subprocess.Popen[bytes], base: str, timeout: float = 60) -> None:
    """Until ``ledger serve`` at ``base`` answers ``GET /healthz`` with 200;
    an AssertionError as soon as the process has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"ledger serve exited with {process.returncode}"
        try:
            if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            time.sleep(0.1)
    raise AssertionError(f"{base} did not come up")
