"""What ``/openapi.json`` promises about itself (API.md, "Additions after the
first release"; issue 14): problem+json errors, public operations without
security, operation ids that read as function names, headers and CSV."""

from __future__ import annotations

import re
from typing import Any

from flask.testing import FlaskClient

from tests.support.api_client import Org

METHODS = ("get", "post", "put", "patch", "delete")
PUBLIC = {
    "get_health", "get_readiness", "create_registration", "check_join_token", "receive_webhook",
    "participant_return", "participant_cancel", "retry_checkout", "get_checkpoint_public_key",
}


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m, p, op) for p, item in spec["paths"].items() for m, op in item.items() if m in METHODS]


def _response(spec: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in response:
        found: dict[str, Any] = spec["components"]["responses"][response["$ref"].rsplit("/", 1)[-1]]
        return found
    return response


def test_every_operation_is_named_secured_and_lists_its_errors_as_problems(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    assert "Error" not in spec["components"]["schemas"]
    problem = spec["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail", "code"}
    assert "errors" in problem["properties"]
    ids = []
    for method, path, op in _operations(spec):
        where = f"{method.upper()} {path}"
        assert re.fullmatch(r"[a-z]+(_[a-z]+)+", op["operationId"]), where
        ids.append(op["operationId"])
        assert "default" not in op["responses"], where
        errors = [code for code in op["responses"] if code >= "400" and path != "/readyz"]
        for code in errors:
            content = _response(spec, op["responses"][code])["content"]
            assert list(content) == ["application/problem+json"], (where, code)
        if op["operationId"] in PUBLIC:
            assert op["security"] == [], where
        else:
            assert "security" not in op, where  # the global bearer requirement
            assert {"401", "403"} <= set(op["responses"]), where
        if "{" in path:
            assert "404" in op["responses"], where
        if method in ("post", "patch"):
            headers = {p["name"] for p in op["parameters"] if p["in"] == "header"}
            assert "Idempotency-Key" in headers, where
            success = next(r for c, r in op["responses"].items() if c.startswith("2"))
            assert "Idempotent-Replayed" in success["headers"], where
        if "If-Match" in {p["name"] for p in op.get("parameters", [])}:
            assert {"409", "412"} <= set(op["responses"]), where
    assert len(ids) == len(set(ids)) >= 30
    assert set(PUBLIC) <= set(ids)
    checkout = spec["paths"]["/v1/registrations/{registration_id}/checkout"]["post"]
    assert checkout["tags"] == ["registrations"]
    assert "Retry-After" in spec["components"]["responses"]["TOO_MANY_REQUESTS"]["headers"]
    for path in ("/v1/reports/fees", "/v1/events/{event_id}/participants"):
        assert "text/csv" in spec["paths"][path]["get"]["responses"]["200"]["content"], path
    assert spec["paths"]["/v1/events/{event_id}"]["get"]["responses"]["200"]["headers"]["ETag"]
    assert "Location" in spec["paths"]["/v1/events"]["post"]["responses"]["201"]["headers"]
    fields = spec["components"]["schemas"]["RegistrationCreate"]["properties"]["fields"]
    assert fields["maxProperties"] == 30 and "maxLength" not in fields
    assert "required" in spec["components"]["schemas"]["Event"]


def test_an_empty_date_bound_is_refused(client: FlaskClient, make_org: Any) -> None:
    org: Org = make_org()
    for query in ("to=", "from=", "organizer="):
        r = client.get(f"/v1/reports/fees?{query}", headers=org.headers)
        assert r.status_code == 422, (query, r.get_data(as_text=True))
        assert r.mimetype == "application/problem+json"


def test_an_idempotency_key_on_an_unknown_method_is_still_a_405(client: FlaskClient, make_org: Any) -> None:
    org: Org = make_org()
    for _ in range(2):  # the key is never claimed, so reusing it changes nothing
        r = client.patch("/v1/organizers", json={"name": "x"}, headers={**org.headers, "Idempotency-Key": "k-405"})
        assert r.status_code == 405, r.get_data(as_text=True)
