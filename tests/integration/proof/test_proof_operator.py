"""The proof as an operator and an auditor use it, in real processes on real
PostgreSQL (R23, docs/audit.md): ``ledger checkpoint`` prints a checkpoint that
``ledger verify --checkpoint`` accepts; after a superuser's tampering both
``ledger verify`` commands exit 1 naming the position; and the standalone
``examples/verify_ledger.py``, run as a subprocess against the real API over
HTTP, verifies signature, inclusion and consistency, and fails after tampering."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.container import Ledger
from ledger.proof.checkpoints import Checkpoint
from tests.integration.proof import tampering
from tests.support.live_api import serve

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "examples" / "verify_ledger.py"


@pytest.fixture
def cli_env(proof_ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The CLI's environment: the test ledger's database and data dir, so the
    CLI, the in-process API and the fixtures share one checkpoint key."""
    monkeypatch.delenv("LEDGER_CHECKPOINT_KEY", raising=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update({
        "PYTHONPATH": str(ROOT), "LEDGER_DATABASE_URL": proof_ledger.database_url,
        "LEDGER_DATA_DIR": str(proof_ledger.settings.data_dir),
        "LEDGER_SECRET_KEY": proof_ledger.settings.secret_key.hex(),
    })
    yield env


def ledger_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "entrypoints.cli", *args], env=env, capture_output=True,
                          text=True, timeout=60, cwd=ROOT)


def auditor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


def checkpoint_to(env: dict[str, str], path: Path) -> Checkpoint:
    """``ledger checkpoint > path``: stdout is the checkpoint JSON alone."""
    result = ledger_cli(env, "checkpoint")
    assert result.returncode == 0, result.stderr
    path.write_text(result.stdout)
    return Checkpoint.from_json(result.stdout)


def test_checkpoint_then_verify_then_tamper_is_named(proof_ledger: Ledger, cli_env: dict[str, str],
                                                     tmp_path: Path) -> None:
    positions = tampering.write_events(proof_ledger, 12)
    saved = checkpoint_to(cli_env, tmp_path / "month-end.json")
    assert saved.size == 12  # sealed up to the head before signing

    intact = ledger_cli(cli_env, "verify")
    assert intact.returncode == 0, intact.stderr
    assert intact.stdout.startswith("OK 12 events (12 sealed), 1 signed checkpoints")
    assert intact.stdout.strip().endswith("events/s)") and len(intact.stdout.splitlines()) == 1
    consistent = ledger_cli(cli_env, "verify", "--checkpoint", str(tmp_path / "month-end.json"))
    assert consistent.returncode == 0, consistent.stderr
    assert consistent.stdout.startswith("OK the checkpoint of 12 events")

    positions = tampering.write_events(proof_ledger, 4)  # today's log extends the saved one
    assert ledger_cli(cli_env, "verify", "--checkpoint", str(tmp_path / "month-end.json")).returncode == 0

    tampering.flip_a_byte(proof_ledger, positions[5])
    caught = ledger_cli(cli_env, "verify")
    assert caught.returncode == 1
    assert caught.stderr.startswith(f"FAIL position {positions[5]}: changed: "), caught.stderr
    against_saved = ledger_cli(cli_env, "verify", "--checkpoint", str(tmp_path / "month-end.json"))
    assert against_saved.returncode == 1 and against_saved.stdout == ""
    assert "does not extend the checkpoint of 12" in against_saved.stderr
    assert f"first problem: position {positions[5]}: changed" in against_saved.stderr


def test_usage_errors_exit_2(cli_env: dict[str, str], tmp_path: Path) -> None:
    missing = ledger_cli(cli_env, "verify", "--checkpoint", str(tmp_path / "nope.json"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    bad_key = ledger_cli({**cli_env, "LEDGER_CHECKPOINT_KEY": "not-hex"}, "checkpoint")
    assert bad_key.returncode == 2 and "LEDGER_CHECKPOINT_KEY" in bad_key.stderr
    assert "Traceback" not in bad_key.stderr and bad_key.stdout == ""
    not_a_checkpoint = tmp_path / "garbage.json"
    not_a_checkpoint.write_text("{}")
    garbage = ledger_cli(cli_env, "verify", "--checkpoint", str(not_a_checkpoint))
    assert garbage.returncode == 1 and "not a checkpoint" in garbage.stderr


def test_the_standalone_verifier_over_http(proof_ledger: Ledger, cli_env: dict[str, str], tmp_path: Path) -> None:
    positions = tampering.write_events(proof_ledger, 10)
    checkpoint_to(cli_env, tmp_path / "last-month.json")
    positions = tampering.write_events(proof_ledger, 7)
    latest = checkpoint_to(cli_env, tmp_path / "ignored.json")
    with serve(proof_ledger) as api:
        token_file = tmp_path / "finance.token"
        token_file.write_text(api.tokens.finance + "\n")
        common = ["--url", api.url, "--token-file", str(token_file), "--public-key", str(tmp_path / "key.json")]

        month_end = auditor(*common, "--saved", str(tmp_path / "last-month.json"), "--position", str(positions[3]),
                            "--save", str(tmp_path / "this-month.json"))
        assert month_end.returncode == 0, month_end.stderr
        lines = month_end.stdout.splitlines()
        assert lines[0].startswith("NOTE first use: pinned public key")
        assert lines[1].startswith(f"OK   signature: checkpoint of {latest.size} events")
        assert lines[2].startswith(f"OK   inclusion: position {positions[3]} is leaf 3 of the checkpoint's tree")
        assert lines[3].startswith("OK   consistency: the checkpoint of 10 events signed")
        assert json.loads((tmp_path / "this-month.json").read_text()) == latest.as_dict()

        # A byte changed under the sealed hashes: the event no longer hashes to its leaf.
        tampering.flip_a_byte(proof_ledger, positions[3])
        inclusion = auditor(*common, "--position", str(positions[3]))
        assert inclusion.returncode == 1
        assert inclusion.stderr.startswith("FAIL the leaf hash is not the hash of the event's encoding")

        # The thorough operator: re-seals the edited log and signs it with the key.
        tampering.write_events(proof_ledger, 2)
        tampering.rewrite_proof_tables(proof_ledger)
        checkpoint_to(cli_env, tmp_path / "forged.json")
        forged = auditor(*common, "--saved", str(tmp_path / "last-month.json"))
        assert forged.returncode == 1, forged.stdout
        assert forged.stderr.startswith("FAIL the checkpoint of 10 events signed at ")
        assert "is NOT a prefix of today's log of 19" in forged.stderr
    caught = ledger_cli(cli_env, "verify", "--checkpoint", str(tmp_path / "last-month.json"))
    assert caught.returncode == 1 and "does not extend the checkpoint of 10" in caught.stderr


def test_ledger_worker_sealer_seals_and_signs(proof_ledger: Ledger, cli_env: dict[str, str]) -> None:
    """``ledger worker sealer`` (as ``ledger run`` starts it) seals new events
    within about a second, signs its first checkpoint, and stops on SIGTERM."""
    from entrypoints.worker_registry import WORKERS
    from ledger.proof import checkpoints, queries
    from tests.support.waiting import wait_until

    assert "sealer" in WORKERS
    worker = subprocess.Popen([sys.executable, "-m", "entrypoints.cli", "worker", "sealer"], env=cli_env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        tampering.write_events(proof_ledger, 9)

        def sealed_and_signed() -> bool:
            with proof_ledger.db.transaction() as conn:
                found = checkpoints.latest(conn)
                return queries.seal_state(conn).size == 9 and found is not None and found.size == 9

        wait_until(sealed_and_signed, timeout=15)
    finally:
        worker.terminate()
        _, stderr = worker.communicate(timeout=15)
    assert worker.returncode == 0, stderr
