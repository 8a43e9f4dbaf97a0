"""Issue 11: anonymous callers' Idempotency-Keys are scoped per client (item 9);
a payment or refund reference reused with another amount is refused, never a
silent no-op (item 4); PATCH honours Idempotency-Key too."""

from __future__ import annotations

import dataclasses
import random
import uuid
from typing import Any

from flask.testing import FlaskClient

from api.app import create_app
from ledger.container import Ledger

USD = {"amount": "49.00", "currency": "USD"}


def _address() -> str:
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


def _register(client: FlaskClient, event_id: str, key: str, address: str, body: dict[str, str],
              **headers: str) -> Any:
    return client.post(f"/v1/events/{event_id}/registrations", json=body,
                       headers={"Idempotency-Key": key, "User-Agent": "browser/1", **headers},
                       environ_base={"REMOTE_ADDR": address})


def test_two_anonymous_clients_with_the_same_key_each_get_their_own_answer(
    client: FlaskClient, make_event: Any
) -> None:
    event, key = make_event(), "retry-1"  # a key clients commonly collide on
    alice, bob = _address(), _address()
    same, bobs = {"name": "Ada", "email": "ada@example.test"}, {"name": "Bob", "email": "bob@example.test"}
    first = _register(client, event["id"], key, alice, same)
    # Another client, the same key: its own registration, never Alice's answer replayed.
    second = _register(client, event["id"], key, bob, bobs)
    assert (first.status_code, second.status_code) == (201, 201)
    assert second.headers.get("Idempotent-Replayed") is None
    assert second.get_json()["id"] != first.get_json()["id"]
    # Even the same body from another client is not a replay: it is the same
    # person (one registration per e-mail and event), found by the address.
    twin = _register(client, event["id"], key, _address(), same)
    assert twin.status_code == 200 and twin.headers.get("Idempotent-Replayed") is None
    assert twin.get_json()["id"] == first.get_json()["id"]
    # And with another body: not refused as "key reused" (that was Alice's key).
    third = _register(client, event["id"], key, _address(), {"name": "Cy", "email": "cy@example.test"})
    assert third.status_code == 201 and third.get_json()["id"] not in {first.get_json()["id"], second.get_json()["id"]}
    # Each client's own retry still replays its own answer.
    again = _register(client, event["id"], key, bob, bobs)
    assert again.headers.get("Idempotent-Replayed") == "true" and again.data == second.data


def test_a_forged_x_forwarded_for_does_not_join_another_clients_scope(client: FlaskClient, make_event: Any) -> None:
    """With no trusted proxy configured, X-Forwarded-For is the client's own
    claim: naming Alice's address does not give Bob Alice's answer."""
    event, key, alice = make_event(), uuid.uuid4().hex, _address()
    body = {"name": "Ada", "email": "ada@example.test"}
    first = _register(client, event["id"], key, alice, body)
    bobs = {"name": "Bob", "email": "bob@example.test"}
    forged = _register(client, event["id"], key, _address(), bobs, **{"X-Forwarded-For": alice})
    assert forged.status_code == 201 and forged.headers.get("Idempotent-Replayed") is None
    assert forged.get_json()["id"] != first.get_json()["id"]


def _paid(client: FlaskClient, event: dict[str, Any]) -> str:
    headers = event["_org"].headers
    r = client.post(f"/v1/events/{event['id']}/registrations", json={"name": "P", "email": "p@example.test"},
                    environ_base={"REMOTE_ADDR": _address()})
    rid = str(r.get_json()["id"])
    r = client.post(f"/v1/registrations/{rid}/payments",
                    json={"amount": USD, "provider": "manual", "reference": "bank-7"}, headers=headers)
    assert r.status_code == 200, r.get_json()
    return rid


def test_a_refund_reference_reused_with_another_amount_is_refused(client: FlaskClient, make_event: Any) -> None:
    event = make_event()
    rid, headers = _paid(client, event), event["_org"].headers
    url = f"/v1/registrations/{rid}/refunds"
    r = client.post(url, json={"amount": {"amount": "10.00", "currency": "USD"}, "reference": "re-1"},
                    headers=headers)
    assert r.status_code == 201 and r.get_json()["refunded"]["amount"] == "10.00"
    same = client.post(url, json={"amount": {"amount": "10.00", "currency": "USD"}, "reference": "re-1"},
                       headers=headers)
    assert same.status_code == 201 and same.get_json()["version"] == r.get_json()["version"]  # a repeat
    other = client.post(url, json={"amount": {"amount": "20.00", "currency": "USD"}, "reference": "re-1"},
                        headers=headers)
    assert (other.status_code, other.get_json()["code"]) == (409, "refund_reference_conflict")
    assert "re-1" in other.get_json()["detail"]
    after = client.get(f"/v1/registrations/{rid}", headers=headers).get_json()
    assert after["refunded"]["amount"] == "10.00" and after["version"] == r.get_json()["version"]


def test_a_payment_reference_reused_with_another_amount_is_refused(client: FlaskClient, make_event: Any) -> None:
    event = make_event()
    rid, headers = _paid(client, event), event["_org"].headers
    url = f"/v1/registrations/{rid}/payments"
    same = client.post(url, json={"amount": USD, "provider": "manual", "reference": "bank-7"}, headers=headers)
    assert same.status_code == 200
    other = client.post(url, json={"amount": {"amount": "12.00", "currency": "USD"}, "provider": "manual",
                                   "reference": "bank-7"}, headers=headers)
    assert (other.status_code, other.get_json()["code"]) == (409, "payment_reference_conflict")
    assert client.get(f"/v1/registrations/{rid}", headers=headers).get_json()["paid"]["amount"] == "49.00"


def test_patch_honours_idempotency_key(client: FlaskClient, make_event: Any) -> None:
    event = make_event()
    headers = {**event["_org"].headers, "Idempotency-Key": uuid.uuid4().hex}
    first = client.patch(f"/v1/events/{event['id']}", json={"title": "One"}, headers=headers)
    again = client.patch(f"/v1/events/{event['id']}", json={"title": "One"}, headers=headers)
    assert first.status_code == 200 and again.headers.get("Idempotent-Replayed") == "true"
    assert again.data == first.data
    other = client.patch(f"/v1/events/{event['id']}", json={"title": "Two"}, headers=headers)
    assert (other.status_code, other.get_json()["code"]) == (422, "idempotency_key_reused")


def test_behind_a_trusted_proxy_the_forwarded_client_is_the_scope(shared_ledger: Ledger, make_event: Any) -> None:
    """``LEDGER_TRUSTED_PROXIES=1``: the client is the address the proxy put
    last in ``X-Forwarded-For``, whatever a client wrote before it."""
    proxied = dataclasses.replace(shared_ledger, settings=dataclasses.replace(shared_ledger.settings,
                                                                              trusted_proxies=1))
    event, key, proxy = make_event(), uuid.uuid4().hex, _address()
    body = {"name": "Ada", "email": "ada@example.test"}
    with create_app(proxied).test_client() as client:
        alice, bob = _address(), _address()
        first = _register(client, event["id"], key, proxy, body, **{"X-Forwarded-For": alice})
        again = _register(client, event["id"], key, proxy, body, **{"X-Forwarded-For": f"{bob}, {alice}"})
        bobs = {"name": "Bob", "email": "bob@example.test"}  # one registration per e-mail: Bob's own
        other = _register(client, event["id"], key, proxy, bobs, **{"X-Forwarded-For": f"{alice}, {bob}"})
    assert again.headers.get("Idempotent-Replayed") == "true" and again.data == first.data
    assert other.status_code == 201 and other.headers.get("Idempotent-Replayed") is None
    assert other.get_json()["id"] != first.get_json()["id"]
