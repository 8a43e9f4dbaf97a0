"""``GET /v1/events/{id}/participants`` (R14): who paid, through HTTP."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from flask.testing import FlaskClient

from ledger.container import Ledger
from projections.runner import ProjectionRunner
from tests.support.api_client import Tokens, bearer


def register_and_pay(client: FlaskClient, event: dict[str, Any], n: int, *, pay: bool = True) -> str:
    r = client.post(f"/v1/events/{event['id']}/registrations", json={"name": f"P{n}", "email": f"p{n}@x.org"})
    assert r.status_code == 201, r.get_json()
    rid: str = r.get_json()["id"]
    if pay:
        r = client.post(f"/v1/registrations/{rid}/payments", headers=event["_org"].headers,
                        json={"amount": event["price"], "provider": "manual", "reference": f"bank-{n}"})
        assert r.status_code in (200, 201), r.get_json()
    return rid


@pytest.fixture
def busy_event(client: FlaskClient, make_event: Any, shared_ledger: Ledger) -> tuple[dict[str, Any], list[str]]:
    event = make_event(price="12.50", currency="EUR")
    regs = [register_and_pay(client, event, n, pay=n != 2) for n in range(5)]
    r = client.post(f"/v1/registrations/{regs[1]}/reject", json={"reason": "duplicate"},
                    headers=event["_org"].headers)
    assert r.status_code == 200, r.get_json()
    ProjectionRunner(shared_ledger).catch_up()
    return event, regs


def test_organizer_pages_through_who_paid(client: FlaskClient, busy_event: Any) -> None:
    event, regs = busy_event
    url = f"/v1/events/{event['id']}/participants"
    r = client.get(url + "?limit=2", headers=event["_org"].headers)
    assert r.status_code == 200 and r.mimetype == "application/json"
    body = r.get_json()
    assert set(body) == {"items", "next", "seats"} and len(body["items"]) == 2 and body["next"]
    seen = [i["registration_id"] for i in body["items"]]
    while body["next"]:
        body = client.get(f"{url}?limit=2&after={body['next']}", headers=event["_org"].headers).get_json()
        seen += [i["registration_id"] for i in body["items"]]
    assert seen == regs
    items = {i["registration_id"]: i for i in client.get(url, headers=event["_org"].headers).get_json()["items"]}
    rejected = items[regs[1]]
    assert rejected["status"] == "refund_due"
    assert rejected["paid"] == rejected["refund_due"] == {"amount": "12.50", "currency": "EUR"}
    assert rejected["refunded"] == {"amount": "0.00", "currency": "EUR"}
    assert rejected["provider_reference"] == "bank-1" and rejected["rejected_at"]
    assert items[regs[2]]["status"] == "awaiting_payment" and items[regs[0]]["status"] == "paid"
    r = client.get(url + "?status=paid", headers=event["_org"].headers)
    assert [i["registration_id"] for i in r.get_json()["items"]] == [regs[0], regs[3], regs[4]]


def test_finance_sees_every_event_other_organizers_get_404(
    client: FlaskClient, busy_event: Any, tokens: Tokens, make_org: Any
) -> None:
    event, _ = busy_event
    url = f"/v1/events/{event['id']}/participants"
    assert client.get(url, headers=bearer(tokens.finance)).status_code == 200
    stranger = make_org()
    r = client.get(url, headers=stranger.headers)
    assert (r.status_code, r.get_json()["code"], r.mimetype) == (404, "not_found", "application/problem+json")
    r = client.get(url, headers={**stranger.headers, "Accept": "text/csv"})
    assert r.status_code == 404
    assert client.get(url).status_code == 401
    r = client.get("/v1/events/00000000-0000-0000-0000-000000000000/participants", headers=bearer(tokens.finance))
    assert r.status_code == 404


def test_csv_lists_every_participant(client: FlaskClient, busy_event: Any) -> None:
    event, regs = busy_event
    r = client.get(f"/v1/events/{event['id']}/participants?limit=1",
                   headers={**event["_org"].headers, "Accept": "text/csv"})
    assert r.status_code == 200 and r.mimetype == "text/csv"
    assert "attachment" in r.headers["Content-Disposition"]
    *rows, total = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
    assert [row["registration_id"] for row in rows] == regs  # all of them, ?limit is for JSON pages
    assert (total["registration_id"], total["paid"], total["refund_due"]) == ("total", "50.00", "12.50")
    assert rows[0]["paid"] == "12.50" and rows[0]["currency"] == "EUR" and rows[0]["fee"] == "0.63"


@pytest.mark.parametrize(("query", "field"), [
    ("limit=0", "limit"), ("limit=501", "limit"), ("limit=abc", "limit"), ("after=garbage!", "after"),
    ("after=YzE6eA", "after"), ("status=unpaid", "status"),
])
def test_bad_input_is_a_422_problem(client: FlaskClient, busy_event: Any, query: str, field: str) -> None:
    event, _ = busy_event
    r = client.get(f"/v1/events/{event['id']}/participants?{query}", headers=event["_org"].headers)
    assert r.status_code == 422 and r.mimetype == "application/problem+json"
    assert field in r.get_json()["errors"]


def test_readyz_reports_projection_lag(client: FlaskClient, shared_ledger: Ledger) -> None:
    ProjectionRunner(shared_ledger).catch_up()
    body = client.get("/readyz").get_json()
    assert body["projections"]["lag"] == 0 and body["projections"]["position"] == body["projections"]["head"]
