"""Every answer is what ``/openapi.json`` says it is: no field its documented
response schema does not declare, no null where the schema does not allow one,
and the declared JSON type for every value, nested objects and list items
included (ARCHITECTURE.md: schemas are the single source of a response's shape).

A sample of endpoints is driven through the app, one organizer's life from
creation to a cancelled event, and each JSON body is checked against the
schema documented for its path, method and status code.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from api.responses import serialize
from api.schemas import OrganizerSchema
from ledger import access_tokens
from ledger.container import Ledger
from projections.runner import ProjectionRunner
from tests.support.api_client import Tokens, bearer

_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str, "integer": int, "number": (int, float), "boolean": bool, "array": list, "object": dict,
}


def _resolve(schema: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _placeholder(branch: dict[str, Any]) -> bool:
    """apispec documents a nullable nested schema as ``anyOf: [{type: object,
    nullable: true}, {$ref}]``; the first branch only says "may be null"."""
    return bool(branch.get("nullable")) and "$ref" not in branch and "properties" not in branch


def mismatches(value: Any, schema: dict[str, Any], spec: dict[str, Any], path: str = "$") -> list[str]:
    """Where ``value`` differs from the OpenAPI 3.0 ``schema`` (empty: it conforms)."""
    schema = _resolve(schema, spec)
    for combinator in ("anyOf", "oneOf"):
        if combinator in schema:
            branches = schema[combinator]
            if value is None:
                nullable = any(b.get("nullable") or _resolve(b, spec).get("nullable") for b in branches)
                return [] if nullable else [f"{path}: null is not declared nullable"]
            results = [mismatches(value, b, spec, path) for b in branches if not _placeholder(b)]
            return [] if any(not r for r in results) else min(results, key=len)
    if "allOf" in schema:
        if value is None:
            return [] if schema.get("nullable") else [f"{path}: null is not declared nullable"]
        return [m for part in schema["allOf"] for m in mismatches(value, part, spec, path)]
    kind = schema.get("type")
    if value is None:  # OpenAPI 3.0: null is allowed by `nullable`, or by a schema naming no type
        return [] if schema.get("nullable") or kind is None else [f"{path}: null is not declared nullable"]
    if kind is not None and (not isinstance(value, _TYPES[kind]) or (kind != "boolean" and isinstance(value, bool))):
        return [f"{path}: {type(value).__name__} where the schema says {kind}"]
    if isinstance(value, list):
        return [m for i, item in enumerate(value) for m in mismatches(item, schema.get("items", {}), spec, f"{path}[{i}]")]
    if not isinstance(value, dict):
        return []
    declared: dict[str, Any] = schema.get("properties", {})
    extra = schema.get("additionalProperties", "properties" not in schema)
    found: list[str] = [f"{path}.{key}: required but missing" for key in schema.get("required", []) if key not in value]
    for key, item in value.items():
        if key in declared:
            found += mismatches(item, declared[key], spec, f"{path}.{key}")
        elif isinstance(extra, dict):
            found += mismatches(item, extra, spec, f"{path}.{key}")
        elif not extra:
            found.append(f"{path}.{key}: not declared by the schema")
    return found


class Checked:
    """A client whose JSON answers are checked against the OpenAPI document."""

    def __init__(self, client: FlaskClient, spec: dict[str, Any]) -> None:
        self.client, self.spec = client, spec
        self.problems: list[str] = []
        self.checked: set[tuple[str, str, int]] = set()

    def __call__(self, method: str, template: str, url: str, expect: int, **kwargs: Any) -> Any:
        r: TestResponse = getattr(self.client, method)(url, **kwargs)
        assert r.status_code == expect, (method, url, r.status_code, r.get_data(as_text=True))
        assert r.mimetype == "application/json", (method, url, r.mimetype)
        where = f"{method.upper()} {template} {expect}"
        documented = self.spec["paths"][template][method]["responses"].get(str(expect), {})
        schema = documented.get("content", {}).get("application/json", {}).get("schema")
        if schema is None:
            self.problems.append(f"{where}: no response schema documented")
        else:
            self.problems += [f"{where}: {m}" for m in mismatches(r.get_json(), schema, self.spec)]
        self.checked.add((method, template, expect))
        return r.get_json()


@pytest.fixture
def checked(client: FlaskClient) -> Checked:
    return Checked(client, client.get("/openapi.json").get_json())


def test_answers_send_only_what_their_documented_schemas_declare(
    checked: Checked, tokens: Tokens, shared_ledger: Ledger
) -> None:
    admin, finance = bearer(tokens.admin), bearer(tokens.finance)
    checked("get", "/healthz", "/healthz", 200)
    checked("get", "/readyz", "/readyz", 200)
    org = checked("post", "/v1/organizers", "/v1/organizers", 201, headers=admin,
                  json={"name": "Schema Org", "country": "US", "plan_size": 10})["id"]
    own = bearer(tokens.organizer(org))
    checked("get", "/v1/organizers/{org}", f"/v1/organizers/{org}", 200, headers=own)
    checked("post", "/v1/organizers/{org}/plan", f"/v1/organizers/{org}/plan", 200, headers=admin,
            json={"plan_size": 20})
    checked("post", "/v1/organizers/{org}/providers", f"/v1/organizers/{org}/providers", 201, headers=own,
            json={"provider": "manual"})
    checked("get", "/v1/organizers/{org}/providers", f"/v1/organizers/{org}/providers", 200, headers=own)
    checked("post", "/v1/tokens", "/v1/tokens", 201, headers=admin, json={"role": "finance"})

    event = checked("post", "/v1/events", "/v1/events", 201, headers=own, json={
        "title": "Schemas", "sessions": [{"starts_at": "2037-12-01T18:00:00+01:00"}],
        "price": {"amount": "20.00", "currency": "USD"}, "provider": "manual",
    })
    url = f"/v1/events/{event['id']}"
    checked("get", "/v1/events/{event_id}", url, 200, headers=own)
    checked("patch", "/v1/events/{event_id}", url, 200, headers=own, json={"description": "All of it"})
    checked("post", "/v1/events/{event_id}/reschedule", url + "/reschedule", 200, headers=own,
            json={"starts_at": "2037-12-02T18:00:00+01:00"})

    regs = []
    for n in range(2):
        regs.append(checked("post", "/v1/events/{event_id}/registrations", url + "/registrations", 201,
                            json={"name": f"P{n}", "email": f"p{n}@example.org", "fields": {"company": "X"}})["id"])
    paid, other = (f"/v1/registrations/{rid}" for rid in regs)
    checked("get", "/v1/registrations/{registration_id}", paid, 200, headers=finance)
    checked("post", "/v1/registrations/{registration_id}/payments", paid + "/payments", 200, headers=own,
            json={"amount": {"amount": "20.00", "currency": "USD"}, "reference": "bank-1"})
    checked("post", "/v1/registrations/{registration_id}/confirm", paid + "/confirm", 200, headers=own)
    with shared_ledger.db.transaction() as conn:
        token = access_tokens.issue(conn, secret_key=shared_ledger.settings.secret_key, registration_id=regs[0],
                                    event_id=event["id"], at=datetime.now(UTC))
    checked("get", "/v1/join/{token}", f"/v1/join/{token}", 200)
    checked("post", "/v1/registrations/{registration_id}/resend-confirmation", paid + "/resend-confirmation",
            202, headers=own)
    checked("post", "/v1/registrations/{registration_id}/refunds", paid + "/refunds", 201, headers=own,
            json={"amount": {"amount": "5.00", "currency": "USD"}, "reference": "back-1"})
    checked("post", "/v1/registrations/{registration_id}/reject", other + "/reject", 200, headers=own,
            json={"reason": "duplicate"})

    ProjectionRunner(shared_ledger).catch_up()
    checked("get", "/v1/events/{event_id}/participants", url + "/participants", 200, headers=own)
    checked("get", "/v1/reports/fees", "/v1/reports/fees", 200, headers=own)
    checked("get", "/v1/reports/fees", f"/v1/reports/fees?organizer={org}&period=day", 200, headers=finance)
    checked("get", "/v1/ledger/events", "/v1/ledger/events?limit=50", 200, headers=finance)
    checked("post", "/v1/events/{event_id}/cancel", url + "/cancel", 200, headers=own, json={"reason": "ill"})
    checked("get", "/v1/registrations/{registration_id}", paid, 200, headers=own)

    assert checked.problems == []
    assert len(checked.checked) >= 24  # (method, path, status) answers checked


def test_the_check_notices_an_undeclared_field(checked: Checked) -> None:
    organizer = {"$ref": "#/components/schemas/Organizer"}
    body = {"id": "o1", "version": 1, "name": "N", "country": "US", "plan_size": 1, "email": None,
            "created_at": "t"}
    assert mismatches(body, organizer, checked.spec) == []
    assert mismatches({**body, "secret": "x"}, organizer, checked.spec) == ["$.secret: not declared by the schema"]
    assert mismatches({**body, "name": None}, organizer, checked.spec) == ["$.name: null is not declared nullable"]
    registration = {"$ref": "#/components/schemas/Registration"}
    found = mismatches({"checkout": {"provider": "stripe", "url": None, "reference": "r", "key": "k"}},
                       registration, checked.spec)
    assert [m for m in found if "required" not in m] == ["$.checkout.key: not declared by the schema"]
    assert "$.id: required but missing" in found


def test_a_field_the_schema_does_not_declare_is_never_sent() -> None:
    body = {"id": "o1", "version": 1, "name": "N", "country": "US", "plan_size": 1, "created_at": "t"}
    assert serialize(OrganizerSchema, {**body, "password": "x"}) == (
        '{"id":"o1","version":1,"name":"N","country":"US","plan_size":1,"created_at":"t"}'
    )
