"""Issue 13 item 1 (R1): Stripe connected with only the key.

The article: create a restricted key (Checkout Sessions, Products, Prices:
write), paste it, approve.  Such a key cannot create webhook endpoints, so the
first release, which required a ``webhook_secret``, refused exactly what the
article tells organizers to do.  Now the key alone is accepted and payments
are confirmed without any webhook: on the participant's return, and by the
reconciler polling the open Checkout Session every
``LEDGER_POLL_WITHOUT_WEBHOOK_SECONDS`` (within a minute with the defaults).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from entrypoints.bootstrap import bootstrap
from tests.contracts.stripe_contract import StripeContractServer
from tests.support.live_api import TIMEOUT, LiveApi, serve
from tests.support.postgres import TestServer
from tests.support.settings import make_settings
from workers import reconcile

POLL_SECONDS = 2


@dataclass
class World:
    live: LiveApi
    stripe: StripeContractServer

    def key_only_shop(self) -> tuple[dict[str, Any], dict[str, str], dict[str, Any]]:
        org_id, headers = self.live.organizer()
        key = self.stripe.restricted_key("products", "prices", "checkout_sessions")
        r = requests.post(f"{self.live.url}/v1/organizers/{org_id}/providers", headers=headers, timeout=TIMEOUT,
                          json={"provider": "stripe", "api_key": key})
        assert r.status_code == 201, r.text
        connection: dict[str, Any] = r.json()
        body: dict[str, Any] = {"title": "Webinar", "starts_at": "2037-12-01T18:00:00+01:00", "permanent": False,
                "price": {"amount": "49.00", "currency": "USD"}, "provider": "stripe"}
        r = requests.post(f"{self.live.url}/v1/events", json=body, headers=headers, timeout=TIMEOUT)
        assert r.status_code == 201, r.text
        return r.json(), headers, connection

    def register(self, event_id: str, email: str) -> dict[str, Any]:
        r = requests.post(f"{self.live.url}/v1/events/{event_id}/registrations",
                          json={"name": "Ada", "email": email}, timeout=TIMEOUT)
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        return body

    def status(self, rid: str, headers: dict[str, str]) -> str:
        r = requests.get(f"{self.live.url}/v1/registrations/{rid}", headers=headers, timeout=TIMEOUT)
        assert r.status_code == 200, r.text
        return str(r.json()["status"])

    def session_of(self, rid: str) -> str:
        return next(s["id"] for s in self.stripe.sessions.values() if s["metadata"]["registration_id"] == rid)


@pytest.fixture
def world(pg_server: TestServer, tmp_path: Path, stripe_server: StripeContractServer) -> Iterator[World]:
    settings = make_settings(tmp_path, LEDGER_STRIPE_API_BASE=stripe_server.base_url,
                             LEDGER_POLL_WITHOUT_WEBHOOK_SECONDS=str(POLL_SECONDS))
    ledger = bootstrap(settings, url=pg_server.new_database(), pool_size=10)
    try:
        with serve(ledger) as live:
            yield World(live, stripe_server)
    finally:
        ledger.close()


def test_a_restricted_key_alone_connects_and_shows_no_webhook_secret(world: World) -> None:
    _, _, connection = world.key_only_shop()
    assert connection["provider"] == "stripe"
    assert set(connection["masked"]) == {"api_key"}, connection
    assert connection["masked"]["api_key"].startswith("rk_test_")


def test_a_payment_becomes_paid_by_polling_with_no_webhook_delivered(world: World) -> None:
    event, headers, _ = world.key_only_shop()
    rid = world.register(event["id"], "ada@example.com")["id"]
    world.stripe.complete(world.session_of(rid))  # paid at Stripe; no webhook is ever sent
    stop = threading.Event()
    worker = threading.Thread(target=reconcile.build(world.live.ledger).run, args=(stop,), daemon=True)
    paid_at = time.monotonic()
    worker.start()
    try:
        while world.status(rid, headers) != "paid":
            assert time.monotonic() - paid_at < 60, "not booked within a minute"
            time.sleep(0.25)
    finally:
        stop.set()
        worker.join(10)
    # The bound: the steady poll interval plus the reconciler's idle wait (5 s) and the calls.
    assert time.monotonic() - paid_at < POLL_SECONDS + 5 + 5
    assert world.live.event_now(event["id"], headers)["tickets_sold"] == 1


def test_the_participants_return_books_the_payment_at_once(world: World) -> None:
    event, headers, connection = world.key_only_shop()
    rid = world.register(event["id"], "bob@example.com")["id"]
    session_id = world.session_of(rid)
    world.stripe.complete(session_id)
    r = requests.get(f"{world.live.url}/v1/webhooks/stripe/{connection['id']}/return",
                     params={"registration_id": rid, "session_id": session_id}, timeout=TIMEOUT,
                     allow_redirects=False)
    assert r.status_code < 400, r.text
    assert world.status(rid, headers) == "paid"


def test_a_webhook_secret_is_optional_but_checked_when_given(world: World) -> None:
    org_id, headers = world.live.organizer()
    url = f"{world.live.url}/v1/organizers/{org_id}/providers"
    key = world.stripe.restricted_key("products", "prices", "checkout_sessions")
    r = requests.post(url, headers=headers, timeout=TIMEOUT,
                      json={"provider": "stripe", "api_key": key, "webhook_secret": "not-a-secret"})
    assert (r.status_code, r.json()["code"]) == (422, "provider_credentials_invalid"), r.text
    r = requests.post(url, headers=headers, timeout=TIMEOUT, json={"provider": "stripe", "api_key": key,
                                                                   "webhook_secret": "  "})
    assert r.status_code == 201 and set(r.json()["masked"]) == {"api_key"}, r.text
    # A webhook to a key-only connection cannot be verified: refused, never booked.
    headers_, body = world.stripe.signed(world.stripe.event("checkout.session.completed", {"id": "cs_x"}))
    r = requests.post(f"{world.live.url}/v1/webhooks/stripe/{r.json()['id']}", data=body, headers=headers_,
                      timeout=TIMEOUT)
    assert (r.status_code, r.json()["code"]) == (400, "invalid_signature"), r.text
