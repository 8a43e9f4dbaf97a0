"""Finance in a real browser: the fee report (R16) with its server-rendered
SVG chart and CSV download, the event-log browser (filters, paging) and a
registration's history — read-only everywhere."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from decimal import Decimal
from typing import Any

import pytest

from ledger import api_tokens, event_log
from ledger.money import Money
from ledger.scope import ANYONE
from tests.support.pages import LiveApp, follow, seed, shot, sign_in

pytestmark = pytest.mark.browser

@pytest.fixture(scope="module")
def figures(live: LiveApp) -> dict[str, Any]:
    """Two organizers in two currencies; one PLN payment refunded in full."""
    pln = seed(live, title="Finanse osobiste", people={"Anna Nowak": True, "Piotr Wiśniewski": True,
                                                       "Ewa Zielińska": True, "Jan Kowalski": False})
    usd = seed(live, title="Pricing workshop", people={"Alice Smith": True, "Bob Jones": True}, country="US",
               currency="USD", price="25.00", timezone="America/New_York", organizer_name="Acme Webinars")
    service = live.ledger.service
    refunded = pln.people["Ewa Zielińska"]
    service.reject(refunded, reason="Asked to withdraw", scope=ANYONE)
    service.record_refund(refunded, amount=Money.parse("49.00", "PLN"), reference="przelew-zwrot-1")
    live.wait_for_views()
    return {"pln": pln, "usd": usd, "token": api_tokens.create_token(live.ledger.db, role="finance")}


def test_fee_report_chart_and_csv(page: Any, live: LiveApp, figures: dict[str, Any]) -> None:
    sign_in(page, live, figures["token"])
    assert "/app/reports/fees" in page.url  # finance lands on the fee report
    for chart in ("#fee-chart-pln", "#fee-chart-usd"):
        svg = page.locator(f"svg{chart}")
        assert svg.get_attribute("role") == "img"
        bars = svg.locator("rect.chart-bar")
        assert bars.count() == 12  # a year of months, empty ones at zero
        heights = [float(h) for h in bars.evaluate_all("rs => rs.map(r => r.getAttribute('height'))")]
        assert sum(1 for h in heights if h > 0) == 1  # everything happened this month
    assert "$2.50" in page.locator("#fee-chart-usd").text_content()  # 5% of 2 × $25.00
    assert "PLN\u00a04.90" in page.locator("#fee-chart-pln").text_content()  # 3 × 2.45, one reversed
    totals = page.locator("table.fees-table tfoot").inner_text()
    assert "$50.00" in totals and "PLN\u00a0147.00" in totals and "PLN\u00a098.00" in totals
    shot(page, "10-fee-report")

    with page.expect_download() as info:
        page.get_by_role("link", name="Download CSV").click()
    download = info.value
    assert download.suggested_filename.startswith("fees_") and download.suggested_filename.endswith(".csv")
    rows = list(csv.DictReader(io.StringIO(open(download.path(), encoding="utf-8").read())))
    totals_by_currency = {r["currency"]: r for r in rows if r["kind"] == "total"}
    items = [r for r in rows if r["kind"] == "item"]
    assert totals_by_currency["USD"]["gross"] == "50.00" and totals_by_currency["USD"]["fee"] == "2.50"
    pln = totals_by_currency["PLN"]
    assert (pln["tickets"], pln["gross"], pln["refunds"], pln["net"], pln["fee"]) == (
        "3", "147.00", "49.00", "98.00", "4.90")
    sums: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for item in items:  # R16: the totals are exact sums of the rows
        for column in ("gross", "refunds", "net", "fee"):
            sums[item["currency"]][column] += Decimal(item[column])
    for currency, total in totals_by_currency.items():
        for column in ("gross", "refunds", "net", "fee"):
            assert sums[currency][column] == Decimal(total[column]), (currency, column)

    # One organizer only, and a refusal shown next to its field.
    page.get_by_label("Organizer id").fill(figures["usd"].organizer_id)
    follow(page, page.get_by_role("button", name="Show"))
    assert page.locator("svg.chart").count() == 1
    assert page.locator("table.fees-table tbody tr").count() == 1
    page.get_by_label("Currency").fill("JPY")
    follow(page, page.get_by_role("button", name="Show"))
    assert "not an accepted currency" in page.locator("#err-currency").inner_text()


def test_event_log_filters_paging_and_history(page: Any, live: LiveApp, figures: dict[str, Any]) -> None:
    sign_in(page, live, figures["token"])
    follow(page, page.get_by_role("link", name="Event log"))
    page.get_by_label("Type").select_option("PaymentRecorded")
    follow(page, page.get_by_role("button", name="Filter"))
    types = page.locator("table.log-table tbody td.event-type").all_inner_texts()
    assert types and set(types) == {"PaymentRecorded"}
    assert len(types) == 5

    page.get_by_label("Type").select_option("")
    page.get_by_label("Organizer id").fill(figures["usd"].organizer_id)
    page.get_by_label("Per page").select_option("25")
    follow(page, page.get_by_role("button", name="Filter"))
    organizers = page.locator("table.log-table tbody td[data-label='Organizer'] a").evaluate_all(
        "links => links.map(a => a.title)")
    expected = [i for i in event_log.read(live.ledger.store, after=0, limit=500)
                if i.organizer_id == figures["usd"].organizer_id]
    assert len(organizers) == len(expected) and set(organizers) == {figures["usd"].organizer_id}

    page.get_by_label("Organizer id").fill("")
    follow(page, page.get_by_role("button", name="Filter"))
    first = [int(p) for p in page.locator("table.log-table tbody td[data-label='#']").all_inner_texts()]
    assert first == sorted(first) and len(first) == 25
    shot(page, "11-event-log")
    follow(page, page.get_by_role("link", name="Next page"))
    second = [int(p) for p in page.locator("table.log-table tbody td[data-label='#']").all_inner_texts()]
    assert second and min(second) > max(first)

    page.get_by_label("Aggregate id").fill("not-an-id")
    follow(page, page.get_by_role("button", name="Filter"))
    assert "Enter an aggregate id" in page.locator("#err-aggregate").inner_text()

    refunded = figures["pln"].people["Ewa Zielińska"]
    page.goto(f"{live.url}/app/log?aggregate={refunded}")
    history = page.locator("table.log-table tbody td.event-type").all_inner_texts()
    assert history == ["ParticipantRegistered", "PaymentRecorded", "ParticipantRejected", "RefundRecorded"]
    page.goto(f"{live.url}/app/registrations/{refunded}")
    assert page.locator(".timeline .event-type").all_inner_texts() == history
    assert page.get_by_role("button").filter(has_text="Confirm").count() == 0  # finance is read-only
    response = page.request.get(f"{live.url}/app/providers")
    assert response.status == 403

