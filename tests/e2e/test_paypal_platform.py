"""Issue 13 item 2 (R2): PayPal the article's way.

The organizer grants the platform once and connects only their PayPal
identity (merchant id or e-mail).  The platform holds one PayPal REST app in
its configuration (``LEDGER_PAYPAL_CLIENT_ID``, ``_CLIENT_SECRET``,
``_WEBHOOK_ID``) and creates the orders with the organizer as
``purchase_units[].payee``, so the money goes to the organizer's account.
The contract server checks the payee as PayPal does (an account it knows).
An organizer's own REST app stays possible.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from entrypoints.bootstrap import bootstrap
from ledger.providers import inbox
from tests.contracts.paypal_contract import PaypalContractServer
from tests.support.live_api import TIMEOUT, LiveApi, serve
from tests.support.postgres import TestServer
from tests.support.settings import make_settings


@dataclass
class World:
    live: LiveApi
    paypal: PaypalContractServer

    def connect(self, identity: dict[str, str]) -> tuple[str, dict[str, str], requests.Response]:
        org_id, headers = self.live.organizer()
        r = requests.post(f"{self.live.url}/v1/organizers/{org_id}/providers", headers=headers, timeout=TIMEOUT,
                          json={"provider": "paypal", **identity})
        return org_id, headers, r

    def paid_through(self, headers: dict[str, str], connection_id: str) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {"title": "Webinar", "starts_at": "2037-12-01T18:00:00+01:00", "permanent": False,
                "price": {"amount": "49.00", "currency": "EUR"}, "provider": "paypal"}
        r = requests.post(f"{self.live.url}/v1/events", json=body, headers=headers, timeout=TIMEOUT)
        assert r.status_code == 201, r.text
        r = requests.post(f"{self.live.url}/v1/events/{r.json()['id']}/registrations", timeout=TIMEOUT,
                          json={"name": "Ola", "email": "ola@example.pl"})
        assert r.status_code == 201, r.text
        rid = r.json()["id"]
        order = next(o for o in self.paypal.orders.values() if o["purchase_units"][0]["custom_id"] == rid)
        return rid, order

    def returned(self, connection_id: str, rid: str, order_id: str, headers: dict[str, str]) -> str:
        r = requests.get(f"{self.live.url}/v1/webhooks/paypal/{connection_id}/return", timeout=TIMEOUT,
                         params={"registration_id": rid, "token": order_id})
        assert r.status_code == 200, r.text
        r = requests.get(f"{self.live.url}/v1/registrations/{rid}", headers=headers, timeout=TIMEOUT)
        return str(r.json()["status"])


def _world(pg_server: TestServer, tmp_path: Path, paypal: PaypalContractServer, platform: bool) -> Iterator[World]:
    env = {"LEDGER_PAYPAL_API_BASE": paypal.base_url}
    if platform:
        env |= {"LEDGER_PAYPAL_CLIENT_ID": paypal.client_id, "LEDGER_PAYPAL_CLIENT_SECRET": paypal.client_secret,
                "LEDGER_PAYPAL_WEBHOOK_ID": paypal.webhook_id}
    ledger = bootstrap(make_settings(tmp_path, **env), url=pg_server.new_database(), pool_size=10)
    try:
        with serve(ledger) as live:
            yield World(live, paypal)
    finally:
        ledger.close()


@pytest.fixture
def world(pg_server: TestServer, tmp_path: Path, paypal_server: PaypalContractServer) -> Iterator[World]:
    yield from _world(pg_server, tmp_path, paypal_server, platform=True)


@pytest.fixture
def own_apps_only(pg_server: TestServer, tmp_path: Path, paypal_server: PaypalContractServer) -> Iterator[World]:
    yield from _world(pg_server, tmp_path, paypal_server, platform=False)


@pytest.mark.parametrize("kind", ["merchant_id", "email"])
def test_an_organizer_connects_only_their_identity_and_is_the_orders_payee(world: World, kind: str) -> None:
    merchant_id, email = world.paypal.merchant()
    identity = {"merchant_id": merchant_id} if kind == "merchant_id" else {"email": email}
    _, headers, r = world.connect(identity)
    assert r.status_code == 201, r.text
    connection = r.json()
    assert connection["masked"] == identity
    rid, order = world.paid_through(headers, connection["id"])
    # The platform's app created the order, naming the organizer as payee.
    assert order["purchase_units"][0]["payee"] == {"merchant_id": merchant_id, "email_address": email}
    world.paypal.approve(order["id"])
    assert world.returned(connection["id"], rid, order["id"], headers) == "paid"  # captured on return
    # No webhook reaches an organizer's connection in this mode: its orders are polled steadily.
    with world.live.ledger.db.transaction() as conn:
        [(steady,)] = conn.execute("SELECT steady_poll_seconds FROM provider_checkouts WHERE registration_id = %s",
                                   (rid,)).fetchall()
    assert steady == 30
    assert inbox.find_checkout(world.live.ledger.db, rid) is not None


def test_identities_are_checked_before_any_order(world: World) -> None:
    cases = [
        ({"merchant_id": "not-an-id"}, "merchant_id"),
        ({"email": "nobody"}, "email"),
        ({"merchant_id": "7KQ4DKV3XQJ2C", "email": "a@b.example"}, "email"),
        ({"merchant_id": "7KQ4DKV3XQJ2C", "client_id": "x"}, "client_id"),
        ({}, "client_id"),
    ]
    for identity, field in cases:
        _, _, r = world.connect(identity)
        assert (r.status_code, r.json()["code"]) == (422, "validation_failed"), (identity, r.text)
        assert field in r.json()["errors"], (identity, r.text)


def test_the_organizers_own_rest_app_stays_possible(world: World) -> None:
    _, headers, r = world.connect(world.paypal.credentials())
    assert r.status_code == 201, r.text
    connection = r.json()
    rid, order = world.paid_through(headers, connection["id"])
    assert order["purchase_units"][0]["payee"]["merchant_id"] == world.paypal.app_merchant_id  # no payee named
    world.paypal.approve(order["id"])
    assert world.returned(connection["id"], rid, order["id"], headers) == "paid"


def test_without_a_platform_app_only_an_own_app_can_be_connected(own_apps_only: World) -> None:
    merchant_id, _ = own_apps_only.paypal.merchant()
    _, _, r = own_apps_only.connect({"merchant_id": merchant_id})
    assert (r.status_code, r.json()["code"]) == (422, "provider_credentials_invalid"), r.text
    assert "own REST app" in r.json()["detail"]
    _, _, r = own_apps_only.connect(own_apps_only.paypal.credentials())
    assert r.status_code == 201, r.text


def test_a_payee_paypal_does_not_know_refuses_the_order_and_holds_no_seat(world: World) -> None:
    _, headers, r = world.connect({"merchant_id": "7KQ4DKV3XQJ2C"})  # well-formed, but no such account
    assert r.status_code == 201, r.text
    body: dict[str, Any] = {"title": "Webinar", "starts_at": "2037-12-01T18:00:00+01:00", "permanent": False,
                            "price": {"amount": "49.00", "currency": "EUR"}, "provider": "paypal"}
    event = requests.post(f"{world.live.url}/v1/events", json=body, headers=headers, timeout=TIMEOUT).json()
    r = requests.post(f"{world.live.url}/v1/events/{event['id']}/registrations", timeout=TIMEOUT,
                      json={"name": "Ola", "email": "ola@example.pl"})
    assert (r.status_code, r.json()["code"]) == (502, "provider_rejected_request"), r.text
    assert "PAYEE_ACCOUNT_INVALID" in r.json()["detail"]
    spec = requests.get(f"{world.live.url}/openapi.json", timeout=TIMEOUT).json()
    assert "502" in spec["paths"]["/v1/events/{event_id}/registrations"]["post"]["responses"]  # documented
    assert world.live.event_now(event["id"], headers)["tickets_held"] == 0


def test_the_platform_apps_webhook_confirms_an_organizers_order(world: World) -> None:
    """The platform's app has one webhook URL, ``/v1/webhooks/paypal/platform``:
    each fact is applied on the connection of the registration it names."""
    merchant_id, _ = world.paypal.merchant()
    _, headers, r = world.connect({"merchant_id": merchant_id})
    rid, order = world.paid_through(headers, r.json()["id"])
    approved = world.paypal.event("CHECKOUT.ORDER.APPROVED", world.paypal.approve(order["id"]), "checkout-order")
    url = f"{world.live.url}/v1/webhooks/paypal/platform"
    assert world.paypal.deliver_event(url, approved) == 200  # verified with the platform app, then captured
    r = requests.get(f"{world.live.url}/v1/registrations/{rid}", headers=headers, timeout=TIMEOUT)
    assert r.json()["status"] == "paid", r.text
    assert world.paypal.deliver_event(url, approved, variant="tampered") == 400


def test_without_a_platform_app_there_is_no_platform_webhook(own_apps_only: World) -> None:
    r = requests.post(f"{own_apps_only.live.url}/v1/webhooks/paypal/platform", data=b"{}", timeout=TIMEOUT,
                      headers={"Content-Type": "application/json"})
    assert (r.status_code, r.json()["code"]) == (404, "not_found"), r.text
