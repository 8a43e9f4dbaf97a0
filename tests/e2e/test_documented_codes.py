"""Issue 13 item 13: the problem codes an operation answers are the ones its
OpenAPI description names -- 409 ``event_cancelled`` on a registration for a
cancelled event first of all.  Each refusal below is produced for real and
looked up in ``/openapi.json`` under its operation and status."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient


def _documented(spec: dict[str, Any], method: str, path: str, status: int) -> set[str]:
    response = spec["paths"][path][method]["responses"][str(status)]
    examples = response["content"]["application/problem+json"]["examples"]
    codes = {example["value"]["code"] for example in examples.values()}
    assert all(code in response["description"] for code in codes)
    return codes


def test_refusals_answer_only_documented_codes(client: FlaskClient, make_event: Any) -> None:
    spec = client.get("/openapi.json").get_json()
    event = make_event()
    headers = event["_org"].headers
    url = f"/v1/events/{event['id']}"
    answered: list[tuple[str, str, Any]] = []

    def seen(method: str, path: str, r: Any) -> None:
        assert r.mimetype == "application/problem+json", r.get_json()
        answered.append((method, path, r))

    seen("post", "/v1/events", client.post("/v1/events", headers=headers, json={
        "title": "Past", "starts_at": "2020-01-01T10:00:00+00:00", "provider": "manual",
        "price": {"amount": "49.00", "currency": "USD"}}))
    seen("post", "/v1/events/{event_id}/reschedule",
         client.post(f"{url}/reschedule", headers=headers, json={"starts_at": "2020-01-01T10:00:00+00:00"}))
    seen("patch", "/v1/events/{event_id}", client.patch(url, headers=headers, json={"price": "1.00"}))
    assert client.post(f"{url}/cancel", headers=headers, json={"reason": "speaker ill"}).status_code == 200
    seen("post", "/v1/events/{event_id}/registrations",
         client.post(f"{url}/registrations", json={"name": "Ada", "email": "ada@example.com"}))
    seen("post", "/v1/events/{event_id}/reschedule",
         client.post(f"{url}/reschedule", headers=headers, json={"starts_at": "2037-12-08T10:00:00+00:00"}))
    seen("post", "/v1/events/{event_id}/cancel", client.post(f"{url}/cancel", headers=headers, json={"reason": "x"}))

    got = [(method, path, r.status_code, r.get_json()["code"]) for method, path, r in answered]
    assert got == [
        ("post", "/v1/events", 422, "starts_at_in_past"),
        ("post", "/v1/events/{event_id}/reschedule", 422, "starts_at_in_past"),
        ("patch", "/v1/events/{event_id}", 422, "price_immutable"),
        ("post", "/v1/events/{event_id}/registrations", 409, "event_cancelled"),
        ("post", "/v1/events/{event_id}/reschedule", 409, "event_cancelled"),
        ("post", "/v1/events/{event_id}/cancel", 409, "event_cancelled"),
    ]
    for method, path, status, code in got:
        assert code in _documented(spec, method, path, status), (method, path, status, code)
