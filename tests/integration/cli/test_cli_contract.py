"""The ``ledger`` command as scripts and operators use it: exit codes (0 ok, 1
domain error or failure, 2 usage error), ``--version``, ``-h``, checked
configuration, and tables that never cut ids or amounts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.container import Ledger

ROOT = Path(__file__).resolve().parents[3]


def ledger_cli(*args: str, env: dict[str, str] | None = None, columns: int = 80) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": str(columns), **(env or {})}
    return subprocess.run([sys.executable, "-m", "entrypoints.cli", *args], env=full, capture_output=True,
                          text=True, timeout=60)


@pytest.fixture
def env(fresh_ledger: Ledger, tmp_path: Path) -> dict[str, str]:
    return {"LEDGER_DATABASE_URL": fresh_ledger.database_url, "LEDGER_DATA_DIR": str(tmp_path)}


def test_version_and_short_help() -> None:
    version = ledger_cli("--version")
    assert version.returncode == 0 and version.stdout.startswith("ledger, version ")
    short, long = ledger_cli("-h"), ledger_cli("--help")
    assert short.returncode == 0 and short.stdout == long.stdout and "Commands:" in short.stdout
    assert ledger_cli("token", "create", "-h").returncode == 0


def test_usage_errors_exit_2_and_domain_errors_exit_1(env: dict[str, str]) -> None:
    unknown = ledger_cli("no-such-command", env=env)
    assert unknown.returncode == 2
    missing = ledger_cli("token", "create", "--role", "organizer", env=env)
    assert missing.returncode == 2 and "--role organizer needs --organizer" in missing.stderr
    stray = ledger_cli("token", "create", "--role", "admin", "--organizer", "x", env=env)
    assert stray.returncode == 2 and "--organizer goes only with --role organizer" in stray.stderr
    assert stray.stdout == ""
    unknown_org = ledger_cli("token", "create", "--role", "organizer", "--organizer",
                             "00000000-0000-0000-0000-000000000000", env=env)
    assert unknown_org.returncode == 1 and "no organizer" in unknown_org.stderr and unknown_org.stdout == ""
    bad_report = ledger_cli("report", "fees", "--from", "yesterday", env=env)
    assert bad_report.returncode == 1 and bad_report.stderr.startswith("error: ")
    assert "Traceback" not in bad_report.stderr


@pytest.mark.parametrize(("variable", "value", "said"), [
    ("LEDGER_HTTP_PORT", "abc", "LEDGER_HTTP_PORT: Input should be a valid integer"),
    ("LEDGER_SECRET_KEY", "not-hex", "LEDGER_SECRET_KEY: must be 64 hexadecimal characters"),
    ("LEDGER_KAFKA_INCLUDE_PII", "maybe", "LEDGER_KAFKA_INCLUDE_PII: Input should be a valid boolean"),
    ("LEDGER_SEAT_HOLD_SECONDS", "5", "LEDGER_SEAT_HOLD_SECONDS: Input should be greater than or equal to 60"),
])
def test_a_wrong_variable_is_named_without_a_traceback(
    env: dict[str, str], variable: str, value: str, said: str
) -> None:
    result = ledger_cli("token", "create", "--role", "finance", env={**env, variable: value})
    assert result.returncode == 2, result.stderr
    assert said in result.stderr and "Traceback" not in result.stderr
    if variable == "LEDGER_SECRET_KEY":
        assert value not in result.stderr  # a secret is never echoed, even a wrong one


def test_true_means_true() -> None:
    from ledger.config import Settings

    for word in ("true", "1", "yes", "TRUE"):
        assert Settings.from_env({"LEDGER_KAFKA_INCLUDE_PII": word, "LEDGER_SECRET_KEY": "11" * 32}).kafka_include_pii
    assert not Settings.from_env({"LEDGER_KAFKA_INCLUDE_PII": "false", "LEDGER_SECRET_KEY": "11" * 32}
                                 ).kafka_include_pii


def test_fee_table_never_cuts_ids_or_amounts(fresh_ledger: Ledger, env: dict[str, str]) -> None:
    from ledger.money import Money

    service = fresh_ledger.service
    org = service.register_organizer(name="Org", country="US", plan_size=10)
    service.connect_provider(str(org.id), provider="manual", masked={}, store_secrets=lambda cid: None)
    from datetime import UTC, datetime, timedelta

    event = service.create_event(
        organizer_id=str(org.id), title="T", description="", sessions=[datetime.now(UTC) + timedelta(days=9)],
        timezone="UTC", permanent=False, price=Money.parse("1999.99", "USD"), provider="manual",
    )
    reg = service.register_participant(str(event.id), name="A", email="a@example.test", fields={})
    service.record_payment(str(reg.id), amount=Money.parse("1999.99", "USD"), provider="manual", reference="r1")
    from projections.runner import build

    build(fresh_ledger).catch_up()
    narrow = ledger_cli("report", "fees", env=env, columns=60)
    assert narrow.returncode == 0, narrow.stderr
    assert "…" not in narrow.stdout
    assert "1999.99" in narrow.stdout and "99.99" in narrow.stdout  # gross and fee, whole
    wide = ledger_cli("report", "fees", "--wide", env=env, columns=60)
    assert str(org.id) in wide.stdout and "1999.99" in wide.stdout and "…" not in wide.stdout


def test_status_on_an_empty_data_dir_says_so_and_creates_nothing(tmp_path: Path) -> None:
    empty = tmp_path / "nothing-here"
    result = ledger_cli("status", env={"LEDGER_DATA_DIR": str(empty), "LEDGER_DATABASE_URL": ""})
    assert result.returncode == 1 and "no ledger here" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not empty.exists()  # no server started, no key written


def test_status_shows_the_broker_and_checks_one_worker(fresh_ledger: Ledger, env: dict[str, str]) -> None:
    from ledger.consumer_health import FollowerHealth, HealthWriter

    shown = ledger_cli("status", env={**env, "LEDGER_KAFKA_BOOTSTRAP": "kafka.example.test:9092"})
    assert shown.returncode == 0, shown.stderr
    assert "broker:           kafka.example.test:9092" in shown.stdout
    assert ledger_cli("status", "--check", "relay", env=env).returncode == 1  # never reported
    assert ledger_cli("status", "--check", "reconcile", env=env).returncode == 0  # no log to follow
    writer = HealthWriter(fresh_ledger.database_url, "relay")
    try:
        assert writer.report(FollowerHealth(position=0))
    finally:
        writer.close()
    healthy = ledger_cli("status", "--check", "relay", env=env)
    assert healthy.returncode == 0 and healthy.stdout.startswith("relay: ok"), healthy.stdout + healthy.stderr
