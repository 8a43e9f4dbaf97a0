"""``ledger books trial-balance`` and ``ledger books statement`` (R22): tables,
CSV, as of, exit codes."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ledger.container import Ledger
from ledger.money import Money
from projections.runner import build
from tests.integration.cli.test_cli_contract import ledger_cli


@pytest.fixture
def env(fresh_ledger: Ledger, tmp_path: Path) -> dict[str, str]:
    return {"LEDGER_DATABASE_URL": fresh_ledger.database_url, "LEDGER_DATA_DIR": str(tmp_path)}


def _paid(ledger: Ledger) -> str:
    service = ledger.service
    org = service.register_organizer(name="Org", country="US", plan_size=10)
    service.connect_provider(str(org.id), provider="manual", masked={}, store_secrets=lambda cid: None)
    event = service.create_event(
        organizer_id=str(org.id), title="T", description="", sessions=[datetime(2037, 12, 1, tzinfo=UTC)],
        timezone="UTC", permanent=False, price=Money.parse("49.00", "USD"), provider="manual",
    )
    for n in range(2):
        reg = service.register_participant(str(event.id), name=f"A{n}", email=f"a{n}@example.test", fields={})
        service.record_payment(str(reg.id), amount=Money.parse("49.00", "USD"), provider="manual",
                               reference=f"r{n}")
    build(ledger).catch_up()
    return str(org.id)


def test_trial_balance_table_csv_and_as_of(fresh_ledger: Ledger, env: dict[str, str]) -> None:
    org = _paid(fresh_ledger)
    table = ledger_cli("books", "trial-balance", env=env, columns=200)
    assert table.returncode == 0, table.stderr
    assert "balanced" in table.stdout and "NOT BALANCED" not in table.stdout and "98.00" in table.stdout
    out = ledger_cli("books", "trial-balance", "--csv", "--organizer", org, env=env)
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    balances = {r["account"]: r["balance"] for r in rows if r["kind"] == "account"}
    assert balances == {"held:manual": "98.00", "ticket_revenue": "-98.00", "fee_expense": "4.90",
                        "fee_payable": "-4.90"}
    (total,) = [r for r in rows if r["kind"] == "total"]
    assert total["debit"] == total["credit"] == "102.90"
    early = ledger_cli("books", "trial-balance", "--csv", "--as-of", "2001-01-01T00:00:00Z", env=env)
    assert early.returncode == 0 and early.stdout.strip().count("\n") == 0  # the header only
    bad = ledger_cli("books", "trial-balance", "--as-of", "yesterday", env=env)
    assert bad.returncode == 1 and bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr


def test_statement_table_and_csv(fresh_ledger: Ledger, env: dict[str, str]) -> None:
    org = _paid(fresh_ledger)
    today = datetime.now(UTC).date()
    table = ledger_cli("books", "statement", org, env=env, columns=200)
    assert table.returncode == 0, table.stderr
    assert "93.10" in table.stdout  # 98.00 of sales minus 4.90 of fee
    out = ledger_cli("books", "statement", org, "--csv", "--from", (today + timedelta(days=1)).isoformat(), env=env)
    (row,) = csv.DictReader(io.StringIO(out.stdout))
    assert (row["opening_balance"], row["sales"], row["closing_balance"]) == ("93.10", "0.00", "93.10")
    foreign = ledger_cli("books", "statement", "not-an-id", env=env)
    assert foreign.returncode == 1 and "Traceback" not in foreign.stderr
