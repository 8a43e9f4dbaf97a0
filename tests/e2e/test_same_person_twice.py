"""Issue 13 item 10: the same person twice on one event.

The first release accepted a second registration with the same e-mail (201)
and could charge that person twice.  Now the address (trimmed, any case) has
one registration per event: registering again answers **200 with the first
registration** -- and its checkout while it is unpaid -- and records nothing.
Only a registration that has ended (rejected, refunded, cancelled) or whose
checkout expired unpaid lets the address register anew.  Race-free: the claim
is a row with a unique key written in the registration's own transaction
(``registration_emails``), holding a keyed HMAC of the address, never the
address itself.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from entrypoints.bootstrap import bootstrap
from tests.contracts.stripe_contract import StripeContractServer
from tests.support.live_api import TIMEOUT, LiveApi, client_from, serve
from tests.support.postgres import TestServer
from tests.support.settings import make_settings


@dataclass
class World:
    live: LiveApi
    stripe: StripeContractServer

    def shop(self, provider: str) -> tuple[dict[str, Any], dict[str, str], str]:
        org_id, headers = self.live.organizer(plan_size=50)
        creds = self.stripe.credentials() if provider == "stripe" else None
        event, connection_id = self.live.event(headers, org_id, provider, creds)
        return event, headers, connection_id

    def register(self, event_id: str, email: str, *, session: requests.Session | None = None) -> requests.Response:
        return (session or requests).post(f"{self.live.url}/v1/events/{event_id}/registrations",
                                          json={"name": "Ada Lovelace", "email": email}, timeout=TIMEOUT)


@pytest.fixture
def world(pg_server: TestServer, tmp_path: Path, stripe_server: StripeContractServer) -> Iterator[World]:
    settings = make_settings(tmp_path, LEDGER_STRIPE_API_BASE=stripe_server.base_url)
    ledger = bootstrap(settings, url=pg_server.new_database(), pool_size=20)
    try:
        with serve(ledger) as live:
            yield World(live, stripe_server)
    finally:
        ledger.close()


def test_the_same_email_again_gets_the_first_registration_and_its_checkout(world: World) -> None:
    event, headers, _ = world.shop("stripe")
    first = world.register(event["id"], "Ada@Example.com")
    assert first.status_code == 201, first.text
    again = world.register(event["id"], "ada@EXAMPLE.COM")
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["checkout"] == first.json()["checkout"]  # the same Stripe session, not a second one
    assert len(world.stripe.sessions) == 1
    assert world.live.event_now(event["id"], headers)["tickets_held"] == 1
    # Another address is another person.
    other = world.register(event["id"], "ada+work@example.com")
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]


def test_a_paid_registration_is_answered_without_a_checkout(world: World) -> None:
    event, headers, _ = world.shop("manual")
    first = world.register(event["id"], "bob@example.com")
    assert first.status_code == 201, first.text
    rid = first.json()["id"]
    r = requests.post(f"{world.live.url}/v1/registrations/{rid}/payments", headers=headers, timeout=TIMEOUT,
                      json={"amount": {"amount": "49.00", "currency": "USD"}, "provider": "manual", "reference": "b1"})
    assert r.status_code == 200 and r.json()["status"] == "paid", r.text
    again = world.register(event["id"], "BOB@example.com")
    assert again.status_code == 200, again.text
    assert (again.json()["id"], again.json()["status"]) == (rid, "paid")
    assert again.json()["checkout"] == {"provider": "manual", "url": None}
    assert world.live.event_now(event["id"], headers)["tickets_sold"] == 1


def test_an_ended_registration_or_a_dead_checkout_lets_the_address_register_anew(world: World) -> None:
    event, headers, connection_id = world.shop("stripe")
    first = world.register(event["id"], "cy@example.com").json()
    session_id = next(iter(world.stripe.sessions))
    expired = world.stripe.event("checkout.session.expired", world.stripe.expire(session_id))
    assert world.stripe.deliver_event(f"{world.live.url}/v1/webhooks/stripe/{connection_id}", expired) == 200
    second = world.register(event["id"], "cy@example.com")
    assert second.status_code == 201, second.text
    assert second.json()["id"] != first["id"] and second.json()["checkout"]["url"] != first["checkout"]["url"]
    r = requests.post(f"{world.live.url}/v1/registrations/{second.json()['id']}/reject", headers=headers,
                      json={"reason": "duplicate account"}, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    third = world.register(event["id"], "CY@example.com")
    assert third.status_code == 201 and third.json()["id"] not in (first["id"], second.json()["id"])
    assert world.register(event["id"], "cy@example.com").json()["id"] == third.json()["id"]


def test_concurrent_duplicates_make_one_registration(world: World) -> None:
    event, headers, _ = world.shop("manual")

    def register(i: int) -> tuple[int, str]:
        r = world.register(event["id"], "dup@example.com" if i % 2 else "DUP@Example.com",
                           session=client_from(f"127.0.2.{i + 1}"))
        assert r.status_code in (200, 201), r.text
        return r.status_code, r.json()["id"]

    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(register, range(12)))
    assert Counter(status for status, _ in answers) == {201: 1, 200: 11}
    assert len({rid for _, rid in answers}) == 1
    assert world.live.event_now(event["id"], headers)["tickets_held"] == 1


def test_the_claim_table_holds_a_keyed_digest_never_the_address(world: World) -> None:
    event, _, _ = world.shop("manual")
    rid = world.register(event["id"], "Eve@Example.com").json()["id"]
    with world.live.ledger.db.transaction() as conn:
        rows = conn.execute("SELECT event_id::text, email_digest, registration_id::text"
                            " FROM registration_emails WHERE registration_id = %s", (rid,)).fetchall()
    [(event_id, digest, registration_id)] = rows
    assert (event_id, registration_id) == (event["id"], rid)
    assert len(bytes(digest)) == 32
    assert b"eve" not in bytes(digest).lower() and b"example" not in bytes(digest).lower()
    emails = world.live.ledger.service.emails
    assert emails is not None and emails.digest(" EVE@example.COM") == bytes(digest)
    assert emails.forget([rid]) == 1  # what erasure (R24) calls
    assert world.register(event["id"], "eve@example.com").status_code == 201
