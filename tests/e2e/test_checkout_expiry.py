"""Checkouts expire with the seat hold (issue 18 item 1, R17, R20).

Before: a Stripe Checkout Session stayed payable 24 h (no ``expires_at``), a
PayU order had no ``validityTime`` and a PayPal order no bound at all, so a
participant could pay for a seat the ledger had long given to someone else.
Now each checkout is opened with the hold's end (Stripe ``expires_at``, PayU
``validityTime``), the reconciler makes a lapsed or early-closed checkout
unpayable at the provider (Stripe expire, PayU ``DELETE``), and a PayPal order
whose hold lapsed is never captured.  Money that still arrives late is
booked and owed back.

A live API on a clock the test moves, with the three contract servers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from entrypoints.bootstrap import bootstrap
from tests.contracts.paypal_contract import PaypalContractServer
from tests.contracts.payu_contract import PayuContractServer
from tests.contracts.stripe_contract import StripeContractServer
from tests.support.live_api import TIMEOUT, LiveApi, client_from, serve
from tests.support.postgres import TestServer
from tests.support.settings import make_settings
from workers.reconcile import Reconciler

SEAT_HOLD = 1800  # make_settings' LEDGER_SEAT_HOLD_SECONDS
STRIPE_HOLD = 33 * 60  # Stripe's 30-minute minimum, counted from the registration with margin


@dataclass
class World:
    live: LiveApi
    stripe: StripeContractServer
    payu: PayuContractServer
    paypal: PaypalContractServer
    clock: list[datetime]
    reconciler: Reconciler

    def advance(self, seconds: float) -> None:
        self.clock[0] += timedelta(seconds=seconds)

    def shop(self, provider: str, plan_size: int = 50) -> tuple[dict[str, Any], dict[str, str], str]:
        org_id, headers = self.live.organizer(country="PL" if provider == "payu" else "US", plan_size=plan_size)
        creds = getattr(self, provider).credentials()
        event, connection_id = self.live.event(headers, org_id, provider, creds,
                                               currency="PLN" if provider == "payu" else "USD")
        return event, headers, connection_id

    def register(self, event: dict[str, Any], i: int = 1) -> dict[str, Any]:
        r = client_from(f"127.0.2.{i}").post(f"{self.live.url}/v1/events/{event['id']}/registrations",
                                             json={"name": f"Person {i}", "email": f"p{i}@example.test"},
                                             timeout=TIMEOUT)
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        return body

    def get(self, rid: str, headers: dict[str, str]) -> dict[str, Any]:
        r = requests.get(f"{self.live.url}/v1/registrations/{rid}", headers=headers, timeout=TIMEOUT)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def seats(self, event: dict[str, Any], headers: dict[str, str]) -> tuple[int, int, int]:
        now = self.live.event_now(event["id"], headers)
        return now["tickets_sold"], now["tickets_held"], now["tickets_left"]


@pytest.fixture
def world(
    pg_server: TestServer, tmp_path: Path, stripe_server: StripeContractServer, payu_server: PayuContractServer,
    paypal_server: PaypalContractServer,
) -> Iterator[World]:
    clock = [datetime.now(UTC)]
    settings = make_settings(
        tmp_path, LEDGER_STRIPE_API_BASE=stripe_server.base_url, LEDGER_PAYU_API_BASE=payu_server.base_url,
        LEDGER_PAYPAL_API_BASE=paypal_server.base_url,
    )
    ledger = bootstrap(settings, url=pg_server.new_database(), pool_size=20, clock=lambda: clock[0])
    try:
        with serve(ledger) as live:
            reconciler = Reconciler(access=ledger.providers, intake=ledger.intake, first_delay=timedelta(0))
            yield World(live, stripe_server, payu_server, paypal_server, clock, reconciler)
    finally:
        ledger.close()


def test_a_stripe_session_expires_with_its_hold_and_the_reconciler_expires_it_at_stripe(world: World) -> None:
    event, headers, _ = world.shop("stripe")
    opened_at = world.clock[0]
    reg = world.register(event)
    session = world.stripe.sessions[_reference(world, reg["id"])]
    deadline = opened_at + timedelta(seconds=STRIPE_HOLD)
    assert session["expires_at"] == int(deadline.timestamp())
    assert world.live.ledger.service.event(event["id"]).holds[reg["id"]] == deadline.isoformat()
    world.reconciler.run_once()
    assert world.stripe.expired_by_api == []  # still within its hold
    world.advance(STRIPE_HOLD + 1)
    world.reconciler.run_once()
    assert world.stripe.expired_by_api == [session["id"]]
    got = world.get(reg["id"], headers)
    assert got["payment_failures"] == [{"reason": "expired", "reference": session["id"]}]
    assert world.seats(event, headers) == (0, 0, 50)
    # Stripe takes no payment on it any more; the checkout cannot be reopened.
    with pytest.raises(ValueError, match="expired"):
        world.stripe.complete(session["id"])
    r = requests.post(f"{world.live.url}/v1/registrations/{reg['id']}/checkout", timeout=TIMEOUT)
    assert (r.status_code, r.json()["code"]) == (409, "invalid_state")
    world.reconciler.run_once()
    assert world.stripe.expired_by_api == [session["id"]]  # once


def test_a_rejected_participants_stripe_session_is_expired_at_once(world: World) -> None:
    event, headers, _ = world.shop("stripe")
    reg = world.register(event)
    r = requests.post(f"{world.live.url}/v1/registrations/{reg['id']}/reject", json={"reason": "duplicate"},
                      headers=headers, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    world.reconciler.run_once()  # no time passes: the rejection made it due now
    assert world.stripe.expired_by_api == [_reference(world, reg["id"])]


def test_payu_order_carries_its_validity_and_a_cancelled_event_cancels_it_and_a_late_payment_is_owed_back(
    world: World,
) -> None:
    event, headers, connection_id = world.shop("payu", plan_size=1)
    reg = world.register(event)
    order_id = _reference(world, reg["id"])
    assert world.payu.orders[order_id]["validityTime"] == str(SEAT_HOLD)
    # The hold lapses: the order is cancelled at PayU and the seat given back.
    world.advance(SEAT_HOLD + 1)
    world.reconciler.run_once()
    assert world.payu.cancelled_by_api == [order_id]
    assert world.get(reg["id"], headers)["payment_failures"] == [
        {"reason": "failed", "reference": order_id}
    ]
    # Someone else buys the only seat.
    other = world.register(event, 2)
    world.payu.set_status(_reference(world, other["id"]), "COMPLETED")
    notify = f"{world.live.url}/v1/webhooks/payu/{connection_id}"
    assert world.payu.deliver_notification(notify, world.payu.order_notification(_reference(world, other["id"]))) == 200
    assert world.seats(event, headers) == (1, 0, 0)
    # The first participant's bank transfer still lands at PayU: booked, owed back (R17).
    world.payu.set_status(order_id, "COMPLETED")
    assert world.payu.deliver_notification(notify, world.payu.order_notification(order_id)) == 200
    got = world.get(reg["id"], headers)
    assert got["paid"]["amount"] == "49.00"
    assert got["refund_due"]["amount"] == "49.00"
    assert got["fee"]["amount"] == "0.00"  # R18: money that paid for no ticket carries no fee
    assert world.seats(event, headers) == (1, 0, 0)


def test_a_paypal_order_whose_hold_lapsed_is_never_captured(world: World) -> None:
    event, headers, _ = world.shop("paypal")
    reg = world.register(event)
    order_id = _reference(world, reg["id"])
    assert world.paypal.orders[order_id]["status"] == "PAYER_ACTION_REQUIRED"
    world.advance(SEAT_HOLD + 1)
    world.paypal.approve(order_id)  # the participant approves too late ...
    r = requests.get(f"{world.live.url}/v1/webhooks/paypal/{_connection(world, reg['id'])}/return",
                     params={"registration_id": reg["id"], "token": order_id}, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    # ... and is not charged: the order ends with the hold.
    assert world.paypal.captures == {}
    got = world.get(reg["id"], headers)
    assert got["status"] == "awaiting_payment" and got["paid"]["amount"] == "0.00"
    assert got["payment_failures"] == [{"reason": "expired", "reference": order_id}]
    world.reconciler.run_once()
    assert world.paypal.captures == {}


def _connection(world: World, registration_id: str) -> str:
    return _checkout_column(world, registration_id, "connection_id")


def _reference(world: World, registration_id: str) -> str:
    return _checkout_column(world, registration_id, "reference")


def _checkout_column(world: World, registration_id: str, column: str) -> str:
    with world.live.ledger.db.transaction() as conn:
        row = conn.execute(f"SELECT {column} FROM provider_checkouts WHERE registration_id = %s",
                           (registration_id,)).fetchone()
    assert row is not None
    return str(row[0])
