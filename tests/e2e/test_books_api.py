"""The books (R22) through HTTP: journal, trial balance (now and as of),
organizer statement (JSON and CSV), tenancy, Ledger-Position, bad input."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

import pytest
from flask.testing import FlaskClient

from ledger.container import Ledger
from projections.runner import ProjectionRunner
from tests.e2e.test_participants_api import register_and_pay
from tests.support.api_client import Tokens, bearer


@pytest.fixture
def paid_books(client: FlaskClient, make_event: Any, shared_ledger: Ledger) -> tuple[Any, Any]:
    mine = make_event(price="10.10", currency="USD")
    theirs = make_event(price="1.10", currency="EUR")
    for n in range(2):
        register_and_pay(client, mine, n)
    rid = register_and_pay(client, theirs, 9)
    r = client.post(f"/v1/registrations/{rid}/refunds", headers=theirs["_org"].headers,
                    json={"amount": {"amount": "0.55", "currency": "EUR"}, "reference": "half"})
    assert r.status_code in (200, 201), r.get_json()
    ProjectionRunner(shared_ledger).catch_up()
    return mine, theirs


def _accounts(body: dict[str, Any], organizer: str) -> dict[str, str]:
    return {a["account"]: a["balance"] for a in body["accounts"] if a["organizer_id"] == organizer}


def test_trial_balance_of_an_organizer_balances_and_names_the_accounts(
    client: FlaskClient, paid_books: Any
) -> None:
    mine, _ = paid_books
    r = client.get("/v1/books/trial-balance", headers=mine["_org"].headers)
    assert r.status_code == 200, r.get_json()
    assert r.headers["Ledger-Position"].isdigit()
    body = r.get_json()
    assert {a["organizer_id"] for a in body["accounts"]} == {mine["_org"].id}
    balances = _accounts(body, mine["_org"].id)
    assert balances["ticket_revenue"] == "-20.20"  # a credit balance
    assert balances["fee_payable"] == "-1.02" and balances["fee_expense"] == "1.02"
    assert sum(float(v) for k, v in balances.items() if k.startswith("held:")) == pytest.approx(20.20)
    (total,) = body["totals"]
    assert total["debit"] == total["credit"] and total["balanced"] is True and body["balanced"] is True
    assert body["as_of"]["position"] == int(r.headers["Ledger-Position"])


def test_refund_lines_take_owed_back_and_ticket_and_reverse_the_fee(client: FlaskClient, paid_books: Any) -> None:
    _, theirs = paid_books
    r = client.get("/v1/books/journal?account=refunds_paid", headers=theirs["_org"].headers)
    assert r.status_code == 200, r.get_json()
    (entry,) = r.get_json()["items"]
    assert entry["type"] == "RefundRecorded" and entry["currency"] == "EUR"
    lines = {(line["account"], "debit" if "debit" in line else "credit"): line.get("debit", line.get("credit"))
             for line in entry["lines"]}
    assert lines[("refunds_paid", "credit")] == "0.55"
    assert lines[("ticket_revenue", "debit")] == "0.55"  # nothing was owed back: the ticket money goes down
    assert ("fee_payable", "debit") in lines and ("fee_expense", "credit") in lines
    debits = sum(float(v) for (_, side), v in lines.items() if side == "debit")
    credits = sum(float(v) for (_, side), v in lines.items() if side == "credit")
    assert debits == pytest.approx(credits)


def test_journal_pages_with_a_cursor_and_finance_sees_everyone(
    client: FlaskClient, paid_books: Any, tokens: Tokens
) -> None:
    mine, theirs = paid_books
    finance = bearer(tokens.finance)
    first = client.get(f"/v1/books/journal?organizer={mine['_org'].id}&limit=1", headers=finance)
    assert first.status_code == 200 and "Ledger-Position" in first.headers
    body = first.get_json()
    assert len(body["items"]) == 1 and body["next"]
    second = client.get(f"/v1/books/journal?organizer={mine['_org'].id}&limit=1&after={body['next']}",
                        headers=finance).get_json()
    assert second["items"][0]["position"] > body["items"][0]["position"]
    everyone = client.get("/v1/books/trial-balance", headers=finance).get_json()
    assert {mine["_org"].id, theirs["_org"].id} <= {a["organizer_id"] for a in everyone["accounts"]}
    assert all(t["balanced"] for t in everyone["totals"])


def test_organizers_never_see_each_others_books(client: FlaskClient, paid_books: Any) -> None:
    mine, theirs = paid_books
    for path in (f"/v1/books/trial-balance?organizer={theirs['_org'].id}",
                 f"/v1/books/journal?organizer={theirs['_org'].id}",
                 f"/v1/organizers/{theirs['_org'].id}/statement"):
        r = client.get(path, headers=mine["_org"].headers)
        assert r.status_code == 404, (path, r.get_json())
        assert r.content_type.startswith("application/problem+json")
    journal = client.get("/v1/books/journal", headers=mine["_org"].headers).get_json()
    assert journal["items"] and {e["organizer_id"] for e in journal["items"]} == {mine["_org"].id}


def test_trial_balance_as_of_a_position_and_a_time(
    client: FlaskClient, paid_books: Any, shared_ledger: Ledger
) -> None:
    mine, _ = paid_books
    journal = client.get("/v1/books/journal", headers=mine["_org"].headers).get_json()["items"]
    first = journal[0]["position"]
    r = client.get(f"/v1/books/trial-balance?as_of=position:{first}", headers=mine["_org"].headers)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["as_of"]["position"] == first
    assert _accounts(body, mine["_org"].id)["ticket_revenue"] == "-10.10"  # only the first payment
    assert body["totals"][0]["balanced"] is True
    before = client.get("/v1/books/trial-balance?as_of=2001-01-01T00:00:00Z", headers=mine["_org"].headers)
    assert before.status_code == 200 and before.get_json()["accounts"] == []
    now = datetime.now(UTC).isoformat()
    later = client.get("/v1/books/trial-balance", headers=mine["_org"].headers, query_string={"as_of": now})
    current = client.get("/v1/books/trial-balance", headers=mine["_org"].headers)
    assert later.get_json()["accounts"] == current.get_json()["accounts"]


def test_statement_json_and_csv(client: FlaskClient, paid_books: Any) -> None:
    mine, _ = paid_books
    day = datetime.now(UTC).date().isoformat()
    r = client.get(f"/v1/organizers/{mine['_org'].id}/statement?from={day}&to={day}&currency=USD",
                   headers=mine["_org"].headers)
    assert r.status_code == 200, r.get_json()
    assert "Ledger-Position" in r.headers
    (usd,) = r.get_json()["currencies"]
    assert {k: usd[k] for k in ("opening_balance", "received", "refunds", "owed_back", "sales", "fee",
                                "closing_balance")} == {
        "opening_balance": "0.00", "received": "20.20", "refunds": "0.00", "owed_back": "0.00", "sales": "20.20",
        "fee": "1.02", "closing_balance": "19.18"}
    assert usd["balance_by_day"] == [{"day": day, "balance": "19.18"}]
    later = client.get(f"/v1/organizers/{mine['_org'].id}/statement?from=2099-01-01",
                       headers=mine["_org"].headers).get_json()
    (usd_later,) = later["currencies"]
    assert usd_later["opening_balance"] == "19.18" and usd_later["closing_balance"] == "19.18"
    r = client.get(f"/v1/organizers/{mine['_org'].id}/statement", headers={**mine["_org"].headers,
                                                                          "Accept": "text/csv"})
    assert r.status_code == 200 and r.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
    assert rows[0]["currency"] == "USD" and rows[0]["closing_balance"] == "19.18"


@pytest.mark.parametrize("query", [
    "as_of=yesterday", "as_of=position:x", "as_of=2026-13-01T00:00:00Z", "currency=XXX", "account=cash",
    "after=-1", "limit=0", "organizer=not-an-id",
])
def test_bad_input_is_a_problem_never_a_500(client: FlaskClient, tokens: Tokens, query: str) -> None:
    path = "/v1/books/journal" if query.split("=")[0] in ("account", "after", "limit") else "/v1/books/trial-balance"
    r = client.get(f"{path}?{query}", headers=bearer(tokens.finance))
    assert 400 <= r.status_code < 500, (query, r.status_code)
    assert r.content_type.startswith("application/problem+json")


def test_fee_report_and_who_paid_as_of_a_position(client: FlaskClient, paid_books: Any) -> None:
    mine, _ = paid_books
    headers = mine["_org"].headers
    journal = client.get("/v1/books/journal", headers=headers).get_json()["items"]
    first = journal[0]["position"]
    now = client.get("/v1/reports/fees", headers=headers)
    assert now.headers["Ledger-Position"].isdigit() and "as_of" not in now.get_json()
    then = client.get(f"/v1/reports/fees?as_of=position:{first}", headers=headers)
    assert then.status_code == 200, then.get_json()
    body = then.get_json()
    assert body["as_of"]["position"] == first
    assert (body["totals"][0]["gross"], body["totals"][0]["fee"]) == ("10.10", "0.51")
    assert now.get_json()["totals"][0]["gross"] == "20.20"

    event_id = journal[0]["paid_event_id"]
    past = client.get(f"/v1/events/{event_id}/participants?as_of=position:{first}", headers=headers)
    assert past.status_code == 200, past.get_json()
    assert past.headers["Ledger-Position"].isdigit()
    (only,) = past.get_json()["items"]  # the second participant had not registered yet
    assert only["paid"] == {"amount": "10.10", "currency": "USD"} and only["status"] == "paid"
    assert past.get_json()["as_of"]["position"] == first
    present = client.get(f"/v1/events/{event_id}/participants", headers=headers)
    assert len(present.get_json()["items"]) == 2 and "as_of" not in present.get_json()
    before = client.get(f"/v1/events/{event_id}/participants?as_of=2001-01-01T00:00:00%2B00:00", headers=headers)
    assert before.status_code == 200 and before.get_json()["items"] == []
