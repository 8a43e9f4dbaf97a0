"""Every command endpoint of API.md, happy paths and each error code."""

from __future__ import annotations

import itertools
from typing import Any

from flask.testing import FlaskClient

from tests.support.api_client import Tokens, bearer

#: A new participant per call (one registration per e-mail and event).
_PARTICIPANTS = itertools.count(1)


def register(client: FlaskClient, event_id: str, **extra: Any) -> Any:
    body = {"name": "Ada", "email": f"ada+{next(_PARTICIPANTS)}@example.com", **extra}
    return client.post(f"/v1/events/{event_id}/registrations", json=body)


def test_organizer_lifecycle_and_tokens(client: FlaskClient, tokens: Tokens) -> None:
    r = client.post("/v1/organizers", json={"name": "Acme", "country": "PL", "plan_size": 50},
                    headers=bearer(tokens.admin))
    assert r.status_code == 201 and r.headers["ETag"] == '"1"'
    org = r.get_json()["id"]
    r = client.post(f"/v1/organizers/{org}/plan", json={"plan_size": 200}, headers=bearer(tokens.admin))
    assert r.get_json()["plan_size"] == 200
    r = client.post("/v1/tokens", json={"role": "organizer", "organizer_id": org}, headers=bearer(tokens.admin))
    assert r.status_code == 201 and r.get_json()["token"].startswith("ldg_")
    org_token = r.get_json()["token"]
    assert client.get(f"/v1/organizers/{org}", headers=bearer(org_token)).status_code == 200


def test_auth_errors(client: FlaskClient, tokens: Tokens, make_org: Any) -> None:
    r = client.post("/v1/organizers", json={"name": "A", "country": "US", "plan_size": 5})
    assert (r.status_code, r.get_json()["code"]) == (401, "unauthenticated")
    assert r.mimetype == "application/problem+json"
    r = client.post("/v1/organizers", json={}, headers=bearer("ldg_not-a-token"))
    assert r.status_code == 401
    org = make_org()
    r = client.post("/v1/organizers", json={"name": "A", "country": "US", "plan_size": 5}, headers=org.headers)
    assert (r.status_code, r.get_json()["code"]) == (403, "forbidden")
    r = client.post(f"/v1/organizers/{org.id}/providers", json={"provider": "manual"},
                    headers=bearer(tokens.finance))
    assert (r.status_code, r.get_json()["code"]) == (403, "forbidden")


def test_tenant_isolation_gives_404_for_another_organizers_ids(client: FlaskClient, make_event: Any,
                                                                make_org: Any) -> None:
    event = make_event()
    other = make_org()
    reg = register(client, event["id"]).get_json()
    for path in (f"/v1/events/{event['id']}", f"/v1/registrations/{reg['id']}",
                 f"/v1/organizers/{event['_org'].id}"):
        r = client.get(path, headers=other.headers)
        assert (r.status_code, r.get_json()["code"]) == (404, "not_found"), path
    r = client.post(f"/v1/registrations/{reg['id']}/confirm", headers=other.headers)
    assert r.status_code == 404
    r = client.post(f"/v1/events/{event['id']}/cancel", json={"reason": "x"}, headers=other.headers)
    assert r.status_code == 404


def test_event_creation_rules_r5_r6_r3(client: FlaskClient, make_org: Any) -> None:
    us = make_org(country="US")
    base = {"title": "W", "starts_at": "2037-12-01T18:00:00+01:00", "provider": "manual"}
    cases = [
        ({"amount": "0.99", "currency": "USD"}, "price_below_minimum"),
        ({"amount": "2000.01", "currency": "USD"}, "price_above_limit"),
        ({"amount": "10.00", "currency": "JPY"}, "currency_not_supported"),
        ({"amount": "10.00", "currency": "HUF"}, "currency_not_supported_by_provider"),
        ({"amount": 10, "currency": "USD"}, "amount_invalid"),
        ({"amount": "10.001", "currency": "USD"}, "amount_invalid"),
        ({"amount": "-5.00", "currency": "USD"}, "price_below_minimum"),
    ]
    for price, code in cases:
        r = client.post("/v1/events", json={**base, "price": price}, headers=us.headers)
        assert (r.status_code, r.get_json()["code"]) == (422, code), price
    r = client.post("/v1/events", json={**base, "price": {"amount": "10.00", "currency": "PLN"}, "provider": "payu"},
                    headers=us.headers)
    assert r.get_json()["code"] == "provider_not_available_in_country"
    r = client.post("/v1/events", json={**base, "price": {"amount": "10.00", "currency": "USD"}, "provider": "stripe"},
                    headers=us.headers)
    assert r.get_json()["code"] == "provider_not_connected"
    r = client.post("/v1/events", json={**base, "starts_at": "2037-12-01T18:00:00",
                                        "price": {"amount": "10.00", "currency": "USD"}}, headers=us.headers)
    assert r.status_code == 422 and "starts_at" in r.get_json()["errors"]


def test_r7_price_immutable_and_edit(client: FlaskClient, make_event: Any) -> None:
    event = make_event()
    h = event["_org"].headers
    r = client.patch(f"/v1/events/{event['id']}", json={"price": {"amount": "1.00", "currency": "USD"}}, headers=h)
    assert (r.status_code, r.get_json()["code"]) == (422, "price_immutable")
    r = client.patch(f"/v1/events/{event['id']}", json={"title": "Better"}, headers=h)
    assert r.status_code == 200 and r.get_json()["title"] == "Better"
    assert r.get_json()["price"] == {"amount": "49.00", "currency": "USD"}


def test_etag_and_if_match(client: FlaskClient, make_event: Any) -> None:
    event = make_event()
    h = event["_org"].headers
    r = client.get(f"/v1/events/{event['id']}", headers=h)
    etag = r.headers["ETag"]
    r = client.patch(f"/v1/events/{event['id']}", json={"title": "A"}, headers={**h, "If-Match": etag})
    assert r.status_code == 200
    r = client.patch(f"/v1/events/{event['id']}", json={"title": "B"}, headers={**h, "If-Match": etag})
    assert (r.status_code, r.get_json()["code"]) == (412, "version_conflict")
    r = client.patch(f"/v1/events/{event['id']}", json={"title": "B"}, headers={**h, "If-Match": "garbage"})
    assert r.status_code == 422


def test_registration_payment_confirm_resend_refund(client: FlaskClient, make_event: Any) -> None:
    event = make_event()
    h = event["_org"].headers
    reg = register(client, event["id"]).get_json()
    assert reg["status"] == "awaiting_payment" and reg["checkout"]["provider"] == "manual"
    rid = reg["id"]
    r = client.post(f"/v1/registrations/{rid}/resend-confirmation", headers=h)
    assert (r.status_code, r.get_json()["code"]) == (409, "invalid_state")
    r = client.post(f"/v1/registrations/{rid}/payments",  # a part payment is real money: recorded (R17)
                    json={"amount": {"amount": "10.00", "currency": "USD"}, "reference": "bank-1"}, headers=h)
    assert r.status_code == 200 and r.get_json()["status"] == "awaiting_payment"
    assert r.get_json()["refund_due"] == {"amount": "10.00", "currency": "USD"}  # owed until the rest comes
    r = client.post(f"/v1/registrations/{rid}/payments",
                    json={"amount": {"amount": "39.00", "currency": "EUR"}, "reference": "bank-2"}, headers=h)
    assert r.get_json()["code"] == "currency_mismatch"
    r = client.post(f"/v1/registrations/{rid}/payments",
                    json={"amount": {"amount": "39.00", "currency": "USD"}, "reference": "bank-2"}, headers=h)
    assert r.status_code == 200 and r.get_json()["status"] == "paid"
    assert r.get_json()["fee"] == {"amount": "2.45", "currency": "USD"}
    assert r.get_json()["refund_due"] == {"amount": "0.00", "currency": "USD"}
    r = client.post(f"/v1/registrations/{rid}/confirm", headers=h)
    assert r.get_json()["status"] == "confirmed"
    r = client.post(f"/v1/registrations/{rid}/resend-confirmation", headers=h)
    assert r.status_code == 202
    r = client.post(f"/v1/registrations/{rid}/refunds",
                    json={"amount": {"amount": "50.00", "currency": "USD"}, "reference": "re-1"}, headers=h)
    assert (r.status_code, r.get_json()["code"]) == (422, "refund_exceeds_paid")
    r = client.post(f"/v1/registrations/{rid}/refunds",
                    json={"amount": {"amount": "49.00", "currency": "USD"}, "reference": "re-1"}, headers=h)
    assert r.status_code == 201 and r.get_json()["status"] == "refunded"
    e = client.get(f"/v1/events/{event['id']}", headers=h).get_json()
    assert (e["tickets_sold"], e["tickets_left"]) == (0, 50)


def test_reject_paid_becomes_refund_due_and_cancel_event(client: FlaskClient, make_event: Any) -> None:
    event = make_event()
    h = event["_org"].headers
    paid, unpaid, rejected = (register(client, event["id"]).get_json()["id"] for _ in range(3))
    for rid in (paid, rejected):
        client.post(f"/v1/registrations/{rid}/payments",
                    json={"amount": {"amount": "49.00", "currency": "USD"}, "reference": f"p-{rid}"}, headers=h)
    r = client.post(f"/v1/registrations/{rejected}/reject", json={"reason": "duplicate"}, headers=h)
    assert r.get_json()["status"] == "refund_due"
    assert r.get_json()["refund_due"] == {"amount": "49.00", "currency": "USD"}
    r = client.post(f"/v1/registrations/{rejected}/reject", json={"reason": "again"}, headers=h)
    assert (r.status_code, r.get_json()["code"]) == (409, "invalid_state")
    r = client.post(f"/v1/events/{event['id']}/cancel", json={"reason": "speaker ill"}, headers=h)
    assert r.get_json()["status"] == "cancelled"
    statuses = {rid: client.get(f"/v1/registrations/{rid}", headers=h).get_json()["status"]
                for rid in (paid, unpaid, rejected)}
    assert statuses == {paid: "refund_due", unpaid: "cancelled", rejected: "refund_due"}
    r = register(client, event["id"])
    assert (r.status_code, r.get_json()["code"]) == (409, "event_cancelled")
    r = client.post(f"/v1/events/{event['id']}/reschedule", json={"starts_at": "2038-01-01T10:00:00+00:00"}, headers=h)
    assert r.get_json()["code"] == "event_cancelled"


def test_reschedule_and_sessions_r10_r13(client: FlaskClient, make_event: Any) -> None:
    event = make_event(permanent=True, sessions=[{"starts_at": "2037-12-01T18:00:00+00:00"},
                                                 {"starts_at": "2037-12-08T18:00:00+00:00"}])
    h = event["_org"].headers
    assert [s["id"] for s in event["sessions"]] == ["s1", "s2"]
    r = client.post(f"/v1/events/{event['id']}/reschedule", json={"starts_at": "2037-12-02T18:00:00+00:00"}, headers=h)
    assert (r.status_code, r.get_json()["code"]) == (409, "invalid_state")
    r = client.post(f"/v1/events/{event['id']}/reschedule",
                    json={"starts_at": "2037-12-09T19:00:00+01:00", "session_id": "s2"}, headers=h)
    assert r.status_code == 200
    assert r.get_json()["sessions"][1]["starts_at"] == "2037-12-09T18:00:00+00:00"


def test_capacity_exhausted_on_registration(client: FlaskClient, make_org: Any, make_event: Any) -> None:
    org = make_org(plan_size=2)
    event = make_event(org)
    assert register(client, event["id"]).status_code == 201
    assert register(client, event["id"]).status_code == 201
    r = register(client, event["id"])
    assert (r.status_code, r.get_json()["code"]) == (422, "capacity_exhausted")


def test_bad_input_never_500(client: FlaskClient, make_event: Any, tokens: Tokens) -> None:
    event = make_event()
    h = event["_org"].headers
    r = client.post(f"/v1/events/{event['id']}/registrations", data="{nope", content_type="application/json")
    assert (r.status_code, r.get_json()["code"]) == (400, "malformed_json")
    r = client.post(f"/v1/events/{event['id']}/registrations", json=["a"])
    assert r.status_code == 422
    r = client.post(f"/v1/events/{event['id']}/registrations", json={"name": "A", "email": "not-an-email"})
    assert r.status_code == 422 and "email" in r.get_json()["errors"]
    r = client.post(f"/v1/events/{event['id']}/registrations", json={"name": "A", "email": "a@b.co", "extra": 1})
    assert r.status_code == 422 and "extra" in r.get_json()["errors"]
    r = client.post(f"/v1/events/{event['id']}/registrations",
                    data='{"name": "' + "x" * 70000 + '"}', content_type="application/json")
    assert (r.status_code, r.get_json()["code"]) == (413, "payload_too_large")
    r = client.post("/v1/events/not-a-uuid/registrations", json={"name": "A", "email": "a@b.co"})
    assert (r.status_code, r.get_json()["code"]) == (404, "not_found")
    r = client.post("/v1/organizers", json={"name": "A", "country": "USA", "plan_size": 0},
                    headers=bearer(tokens.admin))
    assert r.status_code == 422 and set(r.get_json()["errors"]) == {"country", "plan_size"}
    r = client.post("/v1/organizers", json={"name": "A", "country": "US", "plan_size": "5"},
                    headers=bearer(tokens.admin))
    assert r.status_code == 422
    r = client.get("/v1/nothing-here")
    assert (r.status_code, r.get_json()["code"]) == (404, "not_found")
    r = client.delete(f"/v1/events/{event['id']}", headers=h)
    assert r.status_code == 405


def test_idempotency_replay_conflict_and_no_double_write(client: FlaskClient, make_event: Any) -> None:
    event = make_event()
    h = {**event["_org"].headers, "Idempotency-Key": "pay-1"}
    rid = register(client, event["id"]).get_json()["id"]
    body = {"amount": {"amount": "49.00", "currency": "USD"}, "reference": "bank-7"}
    first = client.post(f"/v1/registrations/{rid}/payments", json=body, headers=h)
    again = client.post(f"/v1/registrations/{rid}/payments", json=body, headers=h)
    assert again.headers["Idempotent-Replayed"] == "true" and again.data == first.data
    assert again.status_code == first.status_code
    changed = client.post(f"/v1/registrations/{rid}/payments", json={**body, "reference": "x"}, headers=h)
    assert (changed.status_code, changed.get_json()["code"]) == (422, "idempotency_key_reused")
    reg = client.get(f"/v1/registrations/{rid}", headers=event["_org"].headers).get_json()
    assert len(reg["payments"]) == 1
    r = client.post(f"/v1/registrations/{rid}/confirm", headers={**event["_org"].headers, "Idempotency-Key": "k" * 256})
    assert r.status_code == 422


def test_same_key_registration_creates_one_registration(client: FlaskClient, make_event: Any) -> None:
    event = make_event()
    a = client.post(f"/v1/events/{event['id']}/registrations", json={"name": "A", "email": "a@b.co"},
                    headers={"Idempotency-Key": "reg-xyz"})
    b = client.post(f"/v1/events/{event['id']}/registrations", json={"name": "A", "email": "a@b.co"},
                    headers={"Idempotency-Key": "reg-xyz"})
    assert a.get_json()["id"] == b.get_json()["id"]
    e = client.get(f"/v1/events/{event['id']}", headers=event["_org"].headers).get_json()
    assert e["tickets_left"] == 49


def test_provider_connection_shapes_and_secrets_masked(client: FlaskClient, make_org: Any) -> None:
    org = make_org(country="DE", providers=())
    r = client.post(f"/v1/organizers/{org.id}/providers", json={"provider": "payu", "shop_id": "1", "pos_id": "2",
                    "client_id": "3", "client_secret": "s" * 20, "second_key": "k" * 20}, headers=org.headers)
    assert (r.status_code, r.get_json()["code"]) == (422, "provider_not_available_in_country")
    r = client.post(f"/v1/organizers/{org.id}/providers", json={"provider": "stripe"}, headers=org.headers)
    assert r.status_code == 422 and set(r.get_json()["errors"]) == {"api_key"}  # R1: the key alone
    r = client.post(f"/v1/organizers/{org.id}/providers", json={"provider": "bitcoin"}, headers=org.headers)
    assert r.status_code == 422


def test_openapi_is_served_and_lists_the_contract(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    for path in ("/v1/organizers", "/v1/events", "/v1/events/{event_id}/registrations",
                 "/v1/registrations/{registration_id}/refunds"):
        assert path in spec["paths"]


def test_health(client: FlaskClient) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").get_json()["database"] == "up"


def test_nul_characters_are_refused_with_422_not_500(client: FlaskClient, tokens: Tokens, make_event: Any) -> None:
    """PostgreSQL text cannot store U+0000 (found by the schemathesis run)."""
    r = client.post("/v1/tokens", json={"role": "finance", "label": "a\u0000b"}, headers=bearer(tokens.admin))
    assert (r.status_code, r.get_json()["code"]) == (422, "validation_failed") and "label" in r.get_json()["errors"]
    event = make_event()
    r = client.post(f"/v1/events/{event['id']}/registrations", json={"name": "A\u0000", "email": "a@b.co"})
    assert r.status_code == 422 and "name" in r.get_json()["errors"]
    r = client.get("/v1/reports/fees?currency=US%00D", headers=bearer(tokens.finance))
    assert r.status_code == 422
