"""``GET /v1/reports/fees`` (R16) through HTTP: shape, tenancy, CSV, bad input."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

import pytest
from flask.testing import FlaskClient

from ledger.container import Ledger
from ledger.money import Money
from projections.runner import ProjectionRunner
from tests.e2e.test_participants_api import register_and_pay
from tests.support.api_client import Tokens, bearer


def today() -> str:
    return datetime.now(UTC).date().isoformat()


@pytest.fixture
def two_organizers(client: FlaskClient, make_event: Any, shared_ledger: Ledger) -> tuple[Any, Any]:
    mine = make_event(price="10.10", currency="USD")
    theirs = make_event(price="1.10", currency="EUR")
    for n in range(3):
        register_and_pay(client, mine, n)
    rid = register_and_pay(client, theirs, 9)
    r = client.post(f"/v1/registrations/{rid}/refunds", headers=theirs["_org"].headers,
                    json={"amount": {"amount": "0.55", "currency": "EUR"}, "reference": "half"})
    assert r.status_code in (200, 201), r.get_json()
    ProjectionRunner(shared_ledger).catch_up()
    return mine, theirs


def test_organizer_report_has_items_and_totals(client: FlaskClient, two_organizers: Any) -> None:
    mine, _ = two_organizers
    day = today()
    r = client.get(f"/v1/reports/fees?from={day}&to={day}", headers=mine["_org"].headers)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    (item,) = body["items"]
    assert item["organizer_id"] == mine["_org"].id and item["period"] == day[:7]
    assert {k: item[k] for k in ("currency", "tickets", "gross", "refunds", "net", "fee")} == {
        "currency": "USD", "tickets": 3, "gross": "30.30", "refunds": "0.00", "net": "30.30", "fee": "1.53"}
    (total,) = body["totals"]
    assert total["fee"] == "1.53" and total["gross"] == "30.30" and "organizer_id" not in total


def test_finance_sees_all_organizers_and_can_narrow(client: FlaskClient, two_organizers: Any, tokens: Tokens) -> None:
    mine, theirs = two_organizers
    finance = bearer(tokens.finance)
    body = client.get(f"/v1/reports/fees?from={today()}&period=day", headers=finance).get_json()
    organizers = {i["organizer_id"] for i in body["items"]}
    assert {mine["_org"].id, theirs["_org"].id} <= organizers
    narrow = client.get(f"/v1/reports/fees?organizer={theirs['_org'].id}&currency=EUR",
                        headers=finance).get_json()
    (item,) = narrow["items"]
    assert (item["gross"], item["refunds"], item["net"], item["fee"]) == ("1.10", "0.55", "0.55", "0.03")
    # fee 5.5 → 6 cents charged, a half refund gives back 3: 0.03 remains


def test_another_organizers_report_is_not_found(client: FlaskClient, two_organizers: Any) -> None:
    mine, theirs = two_organizers
    r = client.get(f"/v1/reports/fees?organizer={theirs['_org'].id}", headers=mine["_org"].headers)
    assert (r.status_code, r.get_json()["code"]) == (404, "not_found")


def test_csv_report_parses_and_totals_match(client: FlaskClient, two_organizers: Any, tokens: Tokens) -> None:
    r = client.get("/v1/reports/fees", headers={**bearer(tokens.finance), "Accept": "text/csv"})
    assert r.status_code == 200 and r.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
    assert rows and {row["kind"] for row in rows} == {"item", "total"}
    for total in (row for row in rows if row["kind"] == "total"):
        items = [row for row in rows if row["kind"] == "item" and row["currency"] == total["currency"]]
        cents = sum(Money.parse(row["fee"], row["currency"]).minor for row in items)
        assert Money(cents, total["currency"]).amount == total["fee"]


@pytest.mark.parametrize(("query", "code", "field"), [
    ("from=2026-02-30", "validation_failed", "from"),
    ("to=tomorrow", "validation_failed", "to"),
    ("from=2026-03-02&to=2026-03-01", "invalid_date_range", "from"),
    ("currency=XYZ", "currency_not_supported", "currency"),
    ("period=week", "validation_failed", "period"),
    ("organizer=not-an-id", "validation_failed", "organizer"),
])
def test_bad_input_is_a_422_problem(client: FlaskClient, tokens: Tokens, query: str, code: str, field: str) -> None:
    r = client.get(f"/v1/reports/fees?{query}", headers=bearer(tokens.finance))
    assert (r.status_code, r.get_json()["code"]) == (422, code)
    assert r.mimetype == "application/problem+json" and field in r.get_json()["errors"]
