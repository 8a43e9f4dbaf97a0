"""The organizer's contact e-mail (issue 18 item 2): given when the organizer
is registered, set, changed or removed with ``PUT /v1/organizers/{org}/contact``
by the organizer itself or an admin, recorded as ``OrganizerContactChanged``."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from flask.testing import FlaskClient

from ledger.container import Ledger
from ledger.event_log import read_aggregate
from tests.support.api_client import Tokens, bearer


def _contact_events(ledger: Ledger, org: str) -> list[dict[str, Any]]:
    return [i.as_dict() for i in read_aggregate(ledger.store, org, after=0, limit=50)
            if i.type == "OrganizerContactChanged"]


def test_an_organizer_registered_with_an_email_shows_it_and_records_it(
    client: FlaskClient, tokens: Tokens, shared_ledger: Ledger
) -> None:
    r = client.post("/v1/organizers", json={"name": "Acme", "country": "PL", "plan_size": 50,
                                            "email": "billing@acme.example"}, headers=bearer(tokens.admin))
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert body["email"] == "billing@acme.example" and body["version"] == 2
    (changed,) = _contact_events(shared_ledger, body["id"])
    assert changed["data"] == {"contact_email": "billing@acme.example"} and changed["schema_version"] == 1
    got = client.get(f"/v1/organizers/{body['id']}", headers=bearer(tokens.finance)).get_json()
    assert got["email"] == "billing@acme.example"

    r = client.post("/v1/organizers", json={"name": "Quiet", "country": "US", "plan_size": 5},
                    headers=bearer(tokens.admin))
    assert r.status_code == 201 and r.get_json()["email"] is None and r.get_json()["version"] == 1


def test_the_organizer_sets_changes_and_removes_its_contact(
    client: FlaskClient, make_org: Any, shared_ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    org = make_org()
    caplog.set_level(logging.DEBUG)
    url = f"/v1/organizers/{org.id}/contact"
    r = client.put(url, json={"email": "ops@org.example"}, headers=org.headers)
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["email"] == "ops@org.example"
    version = r.get_json()["version"]
    assert r.headers["ETag"] == f'"{version}"'
    # The same address again records nothing.
    r = client.put(url, json={"email": "ops@org.example"}, headers=org.headers)
    assert r.status_code == 200 and r.get_json()["version"] == version
    # If-Match: a stale version is refused.
    r = client.put(url, json={"email": "new@org.example"}, headers={**org.headers, "If-Match": '"1"'})
    assert r.status_code == 412 and r.content_type == "application/problem+json"
    r = client.put(url, json={"email": "new@org.example"},
                   headers={**org.headers, "If-Match": f'"{version}"'})
    assert r.status_code == 200 and r.get_json()["email"] == "new@org.example"
    r = client.put(url, json={"email": None}, headers=org.headers)
    assert r.status_code == 200 and r.get_json()["email"] is None
    assert [e["data"]["contact_email"] for e in _contact_events(shared_ledger, org.id)] == [
        "ops@org.example", "new@org.example", None]
    # Business contact data, but never written to the logs.
    assert "ops@org.example" not in caplog.text and "new@org.example" not in caplog.text


def test_an_admin_may_set_it_finance_and_other_tenants_may_not(
    client: FlaskClient, make_org: Any, tokens: Tokens
) -> None:
    org, other = make_org(), make_org()
    url = f"/v1/organizers/{org.id}/contact"
    r = client.put(url, json={"email": "admin-set@org.example"}, headers=bearer(tokens.admin))
    assert r.status_code == 200 and r.get_json()["email"] == "admin-set@org.example"
    r = client.put(url, json={"email": "x@evil.example"}, headers=other.headers)
    assert r.status_code == 404 and r.get_json()["code"] == "not_found"  # another tenant's id
    r = client.put(url, json={"email": "x@evil.example"}, headers=bearer(tokens.finance))
    assert r.status_code == 403 and r.get_json()["code"] == "forbidden"
    r = client.put(url, json={"email": "x@evil.example"})
    assert r.status_code == 401
    r = client.put("/v1/organizers/00000000-0000-4000-8000-000000000000/contact",
                   json={"email": "x@y.example"}, headers=bearer(tokens.admin))
    assert r.status_code == 404
    got = client.get(f"/v1/organizers/{org.id}", headers=org.headers).get_json()
    assert got["email"] == "admin-set@org.example"


@pytest.mark.parametrize("body", [
    {"email": "not-an-address"},
    {"email": "two@@example.com"},
    {"email": "zażółć@example.pl"},  # the notify worker writes ASCII addresses only
    {"email": "a" * 250 + "@example.com"},
    {"email": 42},
    {},
    {"email": "ok@example.com", "extra": 1},
])
def test_a_bad_email_is_a_422_problem(client: FlaskClient, make_org: Any, body: dict[str, Any]) -> None:
    org = make_org()
    r = client.put(f"/v1/organizers/{org.id}/contact", json=body, headers=org.headers)
    assert r.status_code == 422, r.get_json()
    assert r.content_type == "application/problem+json"
    problem = r.get_json()
    assert problem["code"] == "validation_failed" and problem["errors"]


def test_a_bad_email_at_registration_is_a_422_problem(client: FlaskClient, tokens: Tokens) -> None:
    r = client.post("/v1/organizers", json={"name": "A", "country": "US", "plan_size": 5, "email": "nope"},
                    headers=bearer(tokens.admin))
    assert r.status_code == 422 and r.content_type == "application/problem+json"
    assert "email" in r.get_json()["errors"]


def test_the_operation_is_documented(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    op = spec["paths"]["/v1/organizers/{org}/contact"]["put"]
    assert op["operationId"] == "set_organizer_contact" and op["tags"] == ["organizers"]
    assert set(op["responses"]) == {"200", "400", "401", "403", "404", "409", "412", "413", "422"}
    assert "ETag" in op["responses"]["200"]["headers"]
    assert [p["name"] for p in op["parameters"] if p["in"] == "header"] == ["If-Match"]
    body = op["requestBody"]["content"]["application/json"]["schema"]
    assert body["$ref"].endswith("/ContactChange")
    assert spec["components"]["schemas"]["ContactChange"]["required"] == ["email"]
    assert "email" in spec["components"]["schemas"]["Organizer"]["required"]
