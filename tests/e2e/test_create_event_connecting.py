"""Issue 13 item 3: connect a provider while creating a paid event (R1-R4).

The article: an organizer connects "from the integrations page or while
creating a new paid event".  ``POST /v1/events`` now accepts ``"connect"``: a
provider connection body, run through the same rules as ``POST
/v1/organizers/{org}/providers``.  A connection the provider refuses creates
no event; an event its own rules refuse leaves no connection (and calls no
provider); the same ``Idempotency-Key`` creates both once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from entrypoints.bootstrap import bootstrap
from tests.contracts.stripe_contract import StripeContractServer
from tests.support.api_client import bearer
from tests.support.live_api import TIMEOUT, LiveApi, serve
from tests.support.postgres import TestServer
from tests.support.settings import make_settings


@dataclass
class World:
    live: LiveApi
    stripe: StripeContractServer

    def create(self, headers: dict[str, str], connect: dict[str, Any] | None, **extra: Any) -> requests.Response:
        body: dict[str, Any] = {"title": "Webinar", "starts_at": "2037-12-01T18:00:00+01:00", "permanent": False,
                                "price": {"amount": "49.00", "currency": "USD"}, "provider": "stripe", **extra}
        if connect is not None:
            body["connect"] = connect
        return requests.post(f"{self.live.url}/v1/events", json=body, headers=headers, timeout=TIMEOUT)

    def connections(self, org_id: str, headers: dict[str, str]) -> list[dict[str, Any]]:
        r = requests.get(f"{self.live.url}/v1/organizers/{org_id}/providers", headers=headers, timeout=TIMEOUT)
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()["items"]
        return items

    def events_of(self, org_id: str) -> list[dict[str, Any]]:
        r = requests.get(f"{self.live.url}/v1/ledger/events?limit=500", headers=bearer(self.live.tokens.finance),
                         timeout=TIMEOUT)
        assert r.status_code == 200, r.text
        return [e for e in r.json()["items"]
                if e["aggregate_type"] == "paid_event" and e["data"].get("organizer_id") == org_id]

    def key(self, *resources: str) -> str:
        return self.stripe.restricted_key(*(resources or ("products", "prices", "checkout_sessions")))


@pytest.fixture
def world(pg_server: TestServer, tmp_path: Path, stripe_server: StripeContractServer) -> Iterator[World]:
    settings = make_settings(tmp_path, LEDGER_STRIPE_API_BASE=stripe_server.base_url)
    ledger = bootstrap(settings, url=pg_server.new_database(), pool_size=10)
    try:
        with serve(ledger) as live:
            yield World(live, stripe_server)
    finally:
        ledger.close()


def test_an_event_is_created_with_its_stripe_connection_in_one_request(world: World) -> None:
    org_id, headers = world.live.organizer()
    r = world.create(headers, {"provider": "stripe", "api_key": world.key()})
    assert r.status_code == 201, r.text
    event = r.json()
    connection = event["connection"]
    assert connection["provider"] == "stripe" and set(connection["masked"]) == {"api_key"}
    assert connection["webhook_url"].endswith(f"/v1/webhooks/stripe/{connection['id']}")
    assert [c["id"] for c in world.connections(org_id, headers)] == [connection["id"]]
    r = requests.post(f"{world.live.url}/v1/events/{event['id']}/registrations",
                      json={"name": "Ada", "email": "ada@example.com"}, timeout=TIMEOUT)
    assert r.status_code == 201 and r.json()["checkout"]["provider"] == "stripe", r.text
    # Without `connect` the answer says so.
    again = world.create(headers, None)
    assert again.status_code == 201 and again.json()["connection"] is None


def test_a_refused_connection_creates_no_event(world: World) -> None:
    org_id, headers = world.live.organizer()
    r = world.create(headers, {"provider": "stripe", "api_key": world.key("products", "checkout_sessions")})
    assert (r.status_code, r.json()["code"]) == (422, "provider_credentials_invalid"), r.text
    assert "Prices: Write" in r.json()["detail"]
    assert world.connections(org_id, headers) == []
    assert world.events_of(org_id) == []


def test_a_refused_event_connects_nothing_and_calls_no_provider(world: World) -> None:
    org_id, headers = world.live.organizer()
    calls = len(world.stripe.requests)
    for extra, code in (({"starts_at": "2020-01-01T10:00:00+00:00"}, "starts_at_in_past"),
                        ({"price": {"amount": "5000.00", "currency": "USD"}}, "price_above_limit")):
        r = world.create(headers, {"provider": "stripe", "api_key": world.key()}, **extra)
        assert (r.status_code, r.json()["code"]) == (422, code), r.text
    r = world.create(headers, {"provider": "payu", "shop_id": "x"})
    assert (r.status_code, r.json()["code"]) == (422, "validation_failed"), r.text
    assert "connect.provider" in r.json()["errors"]
    assert len(world.stripe.requests) == calls
    assert world.connections(org_id, headers) == [] and world.events_of(org_id) == []


def test_the_same_idempotency_key_connects_and_creates_once(world: World) -> None:
    org_id, headers = world.live.organizer()
    keyed = {**headers, "Idempotency-Key": "create-with-stripe-1"}
    connect = {"provider": "stripe", "api_key": world.key()}
    first = world.create(keyed, connect)
    second = world.create(keyed, connect)
    assert first.status_code == second.status_code == 201, second.text
    assert second.headers.get("Idempotent-Replayed") == "true" and second.content == first.content
    assert len(world.connections(org_id, headers)) == 1
    assert len([e for e in world.events_of(org_id) if e["type"] == "PaidEventCreated"]) == 1
