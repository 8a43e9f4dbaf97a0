"""Debian's Chromium for the browser tests (tests/browser/).

The tests drive the distribution's ``chromium`` package through Playwright's
``executable_path`` — Playwright's own browser downloads are never used (no
``playwright install``).  When ``/usr/bin/chromium`` is missing and we are
root (CI, a fresh dev machine), it is installed once from Debian's packages;
without root the browser tests are skipped with a printed reason.  A failed
install as root is a failure, not a skip: CI must always run these tests.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)
_LOCK = Path("/tmp/ledger-tests-chromium-install.lock")  # shared on purpose: one lock for every worker
_attempted = False


def _say(config: pytest.Config | None, message: str) -> None:
    """Print past pytest's output capture, so the reason is seen in CI logs."""
    reporter = config.pluginmanager.get_plugin("terminalreporter") if config is not None else None
    if reporter is not None:
        reporter.write_line(message)
    else:
        print(message)


def _apt(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(  # a fixed argv, no shell
        ["apt-get", *args], env=env, capture_output=True, text=True, timeout=900, check=False,
    )


def require_playwright(config: pytest.Config | None = None) -> Any:
    """``playwright.sync_api``, or a skip with a printed reason when the test
    extra is not installed (``pip install -e '.[test]'`` brings it)."""
    try:
        import playwright.sync_api as sync_api
    except ImportError:
        reason = "browser tests skipped: playwright is not installed (it is in the [test] extra)"
        _say(config, reason)
        pytest.skip(reason)
    return sync_api


def ensure_chromium(config: pytest.Config | None = None) -> str:
    """The path of Debian's chromium, installing it once if we may."""
    global _attempted
    if CHROMIUM.exists():
        return str(CHROMIUM)
    if os.geteuid() != 0:
        reason = (f"browser tests skipped: {CHROMIUM} is missing and installing Debian's chromium "
                  "needs root (run `apt-get install -y chromium` as root, or run the tests as root)")
        _say(config, reason)
        pytest.skip(reason)
    if shutil.which("apt-get") is None:
        pytest.fail(f"{CHROMIUM} is missing and there is no apt-get to install Debian's chromium")
    if not _attempted:
        _attempted = True
        _say(config, "browser tests: installing Debian's chromium (apt-get update; apt-get install -y chromium)")
        with _LOCK.open("w") as lock:  # several xdist workers: one installs, the others wait
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not CHROMIUM.exists():
                update = _apt("update")
                install = _apt("install", "-y", "chromium")
                if not CHROMIUM.exists():
                    pytest.fail(
                        "installing chromium failed:\n" + (update.stderr + install.stdout + install.stderr)[-3000:]
                    )
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is still missing after an install attempt")
    return str(CHROMIUM)
