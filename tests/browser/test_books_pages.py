"""The books' pages in a real browser (R22): finance sees the trial balance
with a "balanced" mark per currency, an account's entries and an organizer's
statement with its balance chart; an organizer sees their own statement; every
page can be shown as of a date."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from ledger import api_tokens
from tests.support.pages import LiveApp, follow, seed, shot, sign_in

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def organizers(live: LiveApp) -> dict[str, Any]:
    pln = seed(live, title="Księgi rachunkowe", people={"Anna Nowak": True, "Piotr Wiśniewski": True,
                                                         "Jan Kowalski": False})
    usd = seed(live, title="Books workshop", people={"Alice Smith": True}, country="US", currency="USD",
               price="25.00", timezone="America/New_York", organizer_name="Ledger Books Inc")
    return {"pln": pln, "usd": usd, "token": api_tokens.create_token(live.ledger.db, role="finance")}


def test_finance_trial_balance_account_entries_and_statement(
    page: Any, live: LiveApp, organizers: dict[str, Any]
) -> None:
    pln = organizers["pln"]
    sign_in(page, live, organizers["token"])
    follow(page, page.get_by_role("link", name="Books"))
    assert "/app/books" in page.url
    for currency in ("PLN", "USD"):
        mark = page.locator(f".balance-mark[data-currency={currency}]")
        assert "Balanced" in mark.inner_text() and "balanced" in (mark.get_attribute("class") or "")
    assert page.locator(".balance-mark.unbalanced").count() == 0
    shot(page, "15-trial-balance")

    page.get_by_label("Organizer id").fill(pln.organizer_id)
    follow(page, page.get_by_role("button", name="Show"))
    rows = page.locator("table.trial-balance tbody tr")
    assert rows.count() == 4  # held:manual, ticket revenue, fee expense, fee owed
    assert "PLN\u00a098.00" in page.locator("table.trial-balance").inner_text()

    follow(page, page.locator("a.account-link", has_text="ticket revenue"))
    assert "/app/books/account" in page.url
    entries = page.locator("table.account-entries tbody tr")
    assert entries.count() == 2 and "PaymentRecorded" in entries.first.inner_text()
    assert "Cr ticket_revenue PLN\u00a049.00" in entries.first.inner_text()  # amounts as money
    page.get_by_label("As of (end of day, UTC)").fill("2001-01-01")
    follow(page, page.get_by_role("button", name="Show"))
    assert page.locator("table.account-entries tbody tr").count() == 0

    page.goto(f"{live.url}/app/books?organizer={pln.organizer_id}")
    follow(page, page.locator("table.trial-balance tbody tr").first.get_by_role("link").first)
    assert "/app/books/statement" in page.url
    chart = page.locator("svg#balance-chart-pln")
    assert chart.get_attribute("role") == "img" and chart.locator("rect.chart-bar").count() == 1
    row = page.locator("table.statement-table tbody tr[data-currency=PLN]")
    assert "PLN\u00a093.10" in row.locator(".closing").inner_text()  # 98.00 of sales minus 4.90 of fee
    shot(page, "16-statement")

    page.goto(f"{live.url}/app/books?as_of=2001-01-01")
    assert "No money has moved yet." in page.locator("main").inner_text()
    page.goto(f"{live.url}/app/books?as_of=not-a-date")
    assert "YYYY-MM-DD" in page.locator("#err-as_of").inner_text()


def test_organizer_sees_their_own_statement_only(page: Any, live: LiveApp, organizers: dict[str, Any]) -> None:
    usd, pln = organizers["usd"], organizers["pln"]
    sign_in(page, live, usd.token)
    follow(page, page.get_by_role("link", name="Statement"))
    assert page.get_by_label("Organizer id").count() == 0
    row = page.locator("table.statement-table tbody tr[data-currency=USD]")
    assert "$23.75" in row.locator(".closing").inner_text()  # 25.00 minus the 1.25 fee
    assert page.locator("table.statement-table tbody tr").count() == 1
    assert page.locator("svg#balance-chart-usd").count() == 1
    today = datetime.now(UTC).date().isoformat()
    page.get_by_label("As of (end of day, UTC)").fill("2001-01-01")
    follow(page, page.get_by_role("button", name="Show"))
    assert page.locator("table.statement-table tbody tr").count() == 0
    page.goto(f"{live.url}/app/books/statement?organizer={pln.organizer_id}&as_of={today}")
    assert page.locator("table.statement-table tbody tr[data-currency=USD]").count() == 1  # their own, always
    assert page.locator("table.statement-table tbody tr[data-currency=PLN]").count() == 0
    refused = page.goto(f"{live.url}/app/books")  # the trial balance of everyone is finance's
    assert refused is not None and refused.status == 403
    assert page.locator("table.trial-balance").count() == 0
