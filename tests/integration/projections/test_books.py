"""The books check themselves (R22): the database refuses an unbalanced or
changed journal line; ``/readyz`` and ``ledger status`` report books that do
not add up; a rebuild from zero gives the same journal and balances."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from api.app import create_app
from ledger.container import Ledger
from ledger.money import Money
from projections import books, books_query, generations
from projections.rebuild import rebuild
from tests.integration.cli.test_cli_contract import ledger_cli
from tests.integration.projections.history import organizer_with_event, paid_registration, project, snapshot


def _paid_books(ledger: Ledger) -> str:
    org, event_id = organizer_with_event(ledger, price=Money(4900, "USD"))
    rid = paid_registration(ledger, event_id, 1)
    paid_registration(ledger, event_id, 2)
    ledger.service.record_refund(rid, amount=Money(1000, "USD"), reference="goodwill", ends_access=False)
    project(ledger, batch_size=3)
    return org


def _schema(ledger: Ledger) -> str:
    with ledger.db.transaction() as conn:
        active = generations.active(conn)
        assert active is not None
        return active.schema_name


def test_the_database_refuses_an_unbalanced_entry_and_changed_lines(fresh_ledger: Ledger) -> None:
    org = _paid_books(fresh_ledger)
    schema = _schema(fresh_ledger)
    insert = (f'INSERT INTO "{schema}".journal_lines (position, line_no, account_id, organizer_id, currency, account,'
              " debit_minor, credit_minor, debit_total, credit_total) VALUES"
              " (999999, 1, 1, %s, 'USD', 'held:manual', 100, 0, 100, 0),"
              " (999999, 2, 2, %s, 'USD', 'ticket_revenue', 0, 99, 0, 99)")
    with pytest.raises(psycopg.errors.CheckViolation, match="unbalanced journal entry"):
        with fresh_ledger.db.transaction() as conn:
            conn.execute(insert, (org, org))
    with pytest.raises(psycopg.errors.CheckViolation, match="never changed"):
        with fresh_ledger.db.transaction() as conn:
            conn.execute(f'UPDATE "{schema}".journal_lines SET debit_minor = debit_minor + 1 WHERE debit_minor > 0')
    assert books_query.check(fresh_ledger.db).balanced


def test_readyz_and_status_report_books_that_do_not_add_up(fresh_ledger: Ledger, tmp_path: Path) -> None:
    _paid_books(fresh_ledger)
    client = create_app(fresh_ledger).test_client()
    ok = client.get("/readyz").get_json()
    assert ok["books"]["balanced"] is True and "books" not in ok["stuck"]
    env = {"LEDGER_DATABASE_URL": fresh_ledger.database_url, "LEDGER_DATA_DIR": str(tmp_path)}
    healthy = ledger_cli("status", "--check", "books", env=env)
    assert healthy.returncode == 0 and "balanced" in healthy.stdout, healthy.stderr

    schema = _schema(fresh_ledger)
    with fresh_ledger.db.transaction() as conn:  # what must never happen: a total changed behind the journal
        conn.execute(f"UPDATE \"{schema}\".book_accounts SET debit_minor = debit_minor + 1"
                     " WHERE account = 'held:manual'")
    r = client.get("/readyz")
    assert r.status_code == 503
    body = r.get_json()
    assert body["books"]["balanced"] is False and "books" in body["stuck"]
    assert any("USD" in p for p in body["books"]["problems"])
    broken = ledger_cli("status", "--check", "books", env=env)
    assert broken.returncode == 1 and "NOT BALANCED" in broken.stdout
    status = ledger_cli("status", env=env)
    assert "books:            NOT BALANCED" in status.stdout, status.stdout + status.stderr

    rebuild(fresh_ledger)  # the books are a view: rebuilt from the log, they add up again
    assert books_query.check(fresh_ledger.db).balanced
    assert client.get("/readyz").get_json()["books"]["balanced"] is True


def test_a_rebuild_from_zero_gives_the_same_journal_and_balances(fresh_ledger: Ledger) -> None:
    org = _paid_books(fresh_ledger)
    before = snapshot(fresh_ledger), books_query.trial_balance(fresh_ledger.db).accounts
    assert before[0]["journal_lines"] and before[0]["journal_entries"]
    rebuild(fresh_ledger, batch_size=2)
    assert (snapshot(fresh_ledger), books_query.trial_balance(fresh_ledger.db).accounts) == before
    mine = {a.account: a.balance_minor for a in before[1] if a.organizer_id == org}
    # 98.00 received, 10.00 refunded from the ticket money (access kept), fee 4.90 - 0.50 given back
    assert mine == {"held:manual": 9800, "refunds_paid": -1000, "ticket_revenue": -8800,
                    "fee_expense": 440, "fee_payable": -440}


def test_as_of_from_a_checkpoint_equals_the_sum_of_the_lines_at_every_position(fresh_ledger: Ledger) -> None:
    org = _paid_books(fresh_ledger)
    with fresh_ledger.db.transaction() as conn:
        active = generations.active(conn, lock=True)
        assert active is not None
        books.write_checkpoint(conn, active.schema_name, active.position)
        checkpoint = active.position
    _, event_id = organizer_with_event(fresh_ledger, price=Money(1999, "EUR"))
    rid = paid_registration(fresh_ledger, event_id, 3)
    fresh_ledger.service.record_refund(rid, amount=Money(1999, "EUR"), reference="all")
    paid_registration(fresh_ledger, event_id, 4)
    project(fresh_ledger, batch_size=2)
    with fresh_ledger.db.transaction() as conn:
        positions = [r[0] for r in conn.execute("SELECT position FROM projections.journal_entries ORDER BY 1")]
    assert any(p > checkpoint for p in positions) and any(p <= checkpoint for p in positions)
    for n in sorted({0, checkpoint, *positions}):
        everyone = books_query.trial_balance(fresh_ledger.db, as_of=f"position:{n}")  # checkpoint + lines
        with fresh_ledger.db.transaction() as conn:
            lines = {(o, c, a): (int(d), int(k)) for o, c, a, d, k in conn.execute(
                "SELECT organizer_id, currency, account, sum(debit_minor), sum(credit_minor)"
                " FROM projections.journal_lines WHERE position <= %s GROUP BY 1, 2, 3", (n,))}
        assert {(a.organizer_id, a.currency, a.account): (a.debit_minor, a.credit_minor)
                for a in everyone.accounts} == lines, n
        assert everyone.balanced
        one = books_query.trial_balance(fresh_ledger.db, organizer=org, as_of=f"position:{n}")  # index probes
        assert one.accounts == [a for a in everyone.accounts if a.organizer_id == org], n


_ORG_A, _ORG_B = "0000000a-0000-4000-8000-000000000000", "0000000b-0000-4000-8000-000000000000"


def test_accounts_are_listed_in_the_charts_order_held_first(fresh_ledger: Ledger) -> None:
    """The order comes from book_accounts.chart_order (a generated column of
    the views' tables, so that the trial balance is read from an index without
    a sort): it must be the chart's own order (books.FIXED_ACCOUNTS)."""
    schema = _schema(fresh_ledger)
    names = ["zz_unknown", *reversed(books.FIXED_ACCOUNTS), books.held("stripe"), books.held("manual")]
    rows = [(n, organizer, currency, name) for n, (organizer, currency, name) in enumerate(
        ((o, c, a) for o in (_ORG_B, _ORG_A) for c in ("USD", "EUR") for a in names), start=1)]
    with fresh_ledger.db.transaction() as conn:
        conn.cursor().executemany(
            f'INSERT INTO "{schema}".book_accounts (account_id, organizer_id, currency, account, debit_minor,'
            " position) VALUES (%s, %s, %s, %s, 1, 1)", rows)

    def rank(name: str) -> int:
        if name.startswith(books.HELD):
            return 0
        return books.FIXED_ACCOUNTS.index(name) + 1 if name in books.FIXED_ACCOUNTS else 99

    expected = sorted(((c, o, rank(a), a) for _, o, c, a in rows))
    found = books_query.trial_balance(fresh_ledger.db).accounts  # every organizer: read from the index
    assert [(a.currency, a.organizer_id, rank(a.account), a.account) for a in found] == expected
    one = books_query.trial_balance(fresh_ledger.db, organizer=_ORG_A).accounts  # a sort of the same columns
    assert [(a.currency, a.account) for a in one] == [(c, a) for c, o, _, a in expected if o == _ORG_A]
