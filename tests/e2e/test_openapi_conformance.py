"""Schemathesis, every check, against the real app over HTTP (issue 14): the
OpenAPI document is exact -- every status, content type, header and body the
service answers is the one documented, with an admin's and an organizer's
token, in the positive and the negative phases.

The ``st run`` CLI is driven against a live server (schemathesis' pytest
plugin does not support this pytest version).  Bounded: a fixed seed and a
few cases per operation, so a run stays well under a minute and a half.
What schemathesis cannot know is told in ``tests/e2e/schemathesis.toml`` (the
bearer scheme; 422 and 412 as answers to valid data) and in
``tests/support/schemathesis_hooks.py`` (one fresh ``Idempotency-Key`` per case).
The stateful phase (links) is not run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import requests

from ledger.container import Ledger
from tests.support.live_api import TIMEOUT, serve

ROOT = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).with_name("schemathesis.toml")
EXAMPLES = os.environ.get("LEDGER_SCHEMATHESIS_EXAMPLES", "8")


def _run(url: str, token: str, report: Path) -> tuple[int, str]:
    st = Path(sys.executable).with_name("st")
    command = [
        str(st), "--config-file", str(CONFIG), "run", f"{url}/openapi.json", "--checks", "all", "--mode", "all",
        "--phases", "examples,coverage,fuzzing", "--max-examples", EXAMPLES, "--seed", "14",
        "--workers", "1", "--no-shrink",
        "--report", "ndjson", "--report-ndjson-path", str(report), "--request-timeout", "15",
        "--suppress-health-check", "all",
    ]
    env = {**os.environ, "NO_COLOR": "1", "LEDGER_ST_TOKEN": token, "PYTHONPATH": str(ROOT),
           "SCHEMATHESIS_HOOKS": "tests.support.schemathesis_hooks"}
    # Run from the report's directory, so that its cache (.schemathesis/) stays out of the tree.
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=report.parent)
    return done.returncode, done.stdout + done.stderr


def test_schemathesis_all_checks_find_nothing(shared_ledger: Ledger, tmp_path: Path) -> None:
    with serve(shared_ledger) as live:
        org_id, org_headers = live.organizer()
        r = requests.post(f"{live.url}/v1/organizers/{org_id}/providers", json={"provider": "manual"},
                          headers=org_headers, timeout=TIMEOUT)
        assert r.status_code == 201, r.text
        organizer_token = org_headers["Authorization"].removeprefix("Bearer ")
        outputs = []
        for role, token in (("admin", live.tokens.admin), ("organizer", organizer_token)):
            code, output = _run(live.url, token, tmp_path / f"{role}.ndjson")
            (tmp_path / f"{role}.txt").write_text(output)
            if os.environ.get("LEDGER_SCHEMATHESIS_OUT"):
                Path(os.environ["LEDGER_SCHEMATHESIS_OUT"], f"{role}.txt").write_text(output)
            outputs.append(f"--- {role} ---\n{_summary(output)}")
            assert code == 0, output[-6000:]
            cases = re.search(r"(\d+) generated, (\d+) passed", output)
            assert cases and cases[1] == cases[2] and int(cases[1]) >= 200, _summary(output)  # zero failures
    print("\n".join(outputs))


def _summary(output: str) -> str:
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if "SUMMARY" in line:
            return "\n".join(lines[i:i + 25])
    return "\n".join(lines[-25:])

