"""Issue 13 item 12: an ISO currency code in lower (or mixed) case is the same
currency -- events, payments, refunds and the fee report's filter read it as
upper case; a code that is not accepted is refused saying which are."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient


def test_lower_case_currency_is_read_as_upper_case_everywhere(
    client: FlaskClient, make_org: Any, make_event: Any
) -> None:
    org = make_org()
    event = make_event(org, price="49.00", currency="usd")
    assert event["price"] == {"amount": "49.00", "currency": "USD"}
    eur = make_event(org, price="10.00", currency="Eur")
    assert eur["price"]["currency"] == "EUR"

    r = client.post(f"/v1/events/{event['id']}/registrations", json={"name": "Ada", "email": "ada@example.com"})
    assert r.status_code == 201, r.get_json()
    rid = r.get_json()["id"]
    r = client.post(f"/v1/registrations/{rid}/payments", headers=org.headers,
                    json={"amount": {"amount": "49.00", "currency": "usd"}, "provider": "manual", "reference": "t1"})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["status"] == "paid" and r.get_json()["paid"]["currency"] == "USD"
    r = client.post(f"/v1/registrations/{rid}/refunds", headers=org.headers,
                    json={"amount": {"amount": "9.00", "currency": "uSd"}, "reference": "goodwill"})
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["refunded"] == {"amount": "9.00", "currency": "USD"}

    r = client.get("/v1/reports/fees?currency=usd", headers=org.headers)
    assert r.status_code == 200, r.get_json()
    report = r.get_json()
    assert report["filters"]["currency"] == "USD"


def test_a_currency_that_is_not_accepted_says_exactly_what_is_wrong(client: FlaskClient, make_org: Any) -> None:
    org = make_org()
    body = {"title": "Webinar", "starts_at": "2037-12-01T18:00:00+01:00", "permanent": False,
            "provider": "manual"}
    r = client.post("/v1/events", json={**body, "price": {"amount": "49.00", "currency": "xyz"}}, headers=org.headers)
    assert r.status_code == 422 and r.get_json()["code"] == "currency_not_supported"
    detail = r.get_json()["detail"]
    assert "'XYZ' is not an accepted currency" in detail and "USD" in detail and "PLN" in detail
    for bad in ("us", "usd1", "u$d", "ÜSD"):
        r = client.post("/v1/events", json={**body, "price": {"amount": "49.00", "currency": bad}},
                        headers=org.headers)
        assert r.status_code == 422, (bad, r.get_json())
        assert r.get_json()["code"] == "validation_failed"
        assert r.get_json()["errors"]["price.currency"] == ["must be a three-letter ISO 4217 code such as USD"]
    r = client.get("/v1/reports/fees?currency=xyz", headers=org.headers)
    assert (r.status_code, r.get_json()["code"]) == (422, "currency_not_supported")
