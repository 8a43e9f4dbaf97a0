"""PayU end to end through the HTTP API and the PayU contract server (R3, R6, R8, R15)."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from ledger.container import Ledger
from tests.e2e import test_providers_support as kit
from tests.e2e.test_providers_support import PUBLIC_URL, SLOW, Servers, Shop, connect, facts, inbox_rows, open_shop

# The module's own ledger, app and provider wiring (see test_providers_support).
app = kit.app
provider_ledger = kit.provider_ledger
servers = kit.servers
tokens = kit.tokens


@pytest.fixture
def shop(client: FlaskClient, make_org: Any, servers: Servers) -> Shop:
    return open_shop(client, make_org, servers, "payu", price="120.50")


def _notify(shop: Shop, servers: Servers, payload: dict[str, Any], **kw: Any) -> Any:
    headers, body = servers.payu.signed(payload, **kw)
    return shop.webhook(headers, body)


def _order(servers: Servers, registration_id: str) -> dict[str, Any]:
    return next(o for o in servers.payu.orders.values() if o["extOrderId"] == registration_id)


def test_register_creates_an_order_in_grosze_and_the_notification_marks_it_paid(shop: Shop, servers: Servers) -> None:
    reg = shop.registered()
    order = _order(servers, reg["id"])
    assert reg["checkout"]["url"].startswith(f"{servers.payu.base_url}/pay/?orderId={order['orderId']}")
    assert (order["totalAmount"], order["currencyCode"]) == ("12050", "PLN")
    assert order["notifyUrl"] == f"{PUBLIC_URL}/v1/webhooks/payu/{shop.connection_id}"
    servers.payu.set_status(order["orderId"], "PENDING")
    r = _notify(shop, servers, servers.payu.order_notification(order["orderId"]))
    assert r.get_json()["facts"][0]["outcome"] == "pending"
    servers.payu.set_status(order["orderId"], "COMPLETED")
    r = _notify(shop, servers, servers.payu.order_notification(order["orderId"]), algorithm="SHA-256")
    assert r.status_code == 200 and r.get_json()["facts"][0]["outcome"] == "payment_recorded"
    got = shop.get(reg["id"])
    assert (got["status"], got["paid"]) == ("paid", {"amount": "120.50", "currency": "PLN"})
    assert got["payments"][0]["reference"] == order["orderId"]


def test_repeated_notifications_book_once(shop: Shop, servers: Servers, provider_ledger: Ledger) -> None:
    reg = shop.registered()
    order_id = _order(servers, reg["id"])["orderId"]
    servers.payu.set_status(order_id, "COMPLETED")
    payload = servers.payu.order_notification(order_id)
    for _ in range(3):
        assert _notify(shop, servers, payload).status_code == 200
    # PayU sends a new body (receipt time) for the same status: same fact.
    r = _notify(shop, servers, servers.payu.order_notification(order_id))
    assert r.get_json()["facts"][0]["outcome"] == "duplicate:payment_recorded"
    assert len(shop.get(reg["id"])["payments"]) == 1
    assert inbox_rows(provider_ledger, shop.connection_id) == [("verified", 3), ("verified", 1)]


@pytest.mark.parametrize("variant", ["tampered", "wrong_key"])
def test_bad_signatures_are_400_and_record_nothing(
    shop: Shop, servers: Servers, provider_ledger: Ledger, variant: str
) -> None:
    reg = shop.registered()
    order_id = _order(servers, reg["id"])["orderId"]
    servers.payu.set_status(order_id, "COMPLETED")
    r = _notify(shop, servers, servers.payu.order_notification(order_id), variant=variant)
    assert (r.status_code, r.get_json()["code"]) == (400, "invalid_signature")
    assert shop.get(reg["id"])["status"] == "awaiting_payment"
    assert inbox_rows(provider_ledger, shop.connection_id) == [("invalid_signature", 1)]
    assert facts(provider_ledger, reg["id"]) == []


def test_cancelled_order_releases_the_seat_and_a_late_completion_still_books(shop: Shop, servers: Servers) -> None:
    reg = shop.registered()
    order_id = _order(servers, reg["id"])["orderId"]
    servers.payu.set_status(order_id, "CANCELED")
    r = _notify(shop, servers, servers.payu.order_notification(order_id))
    assert r.get_json()["facts"][0]["outcome"] == "payment_failed"
    assert shop.event_now()["tickets_left"] == 50
    # Out of order (PayU never does this, a replaying proxy might): money is a fact.
    servers.payu.set_status(order_id, "COMPLETED")
    _notify(shop, servers, servers.payu.order_notification(order_id))
    got = shop.get(reg["id"])
    assert got["status"] == "paid" and shop.event_now()["tickets_sold"] == 1


def test_a_rejected_order_releases_the_seat(shop: Shop, servers: Servers) -> None:
    """Issue 18 item 6: PayU's REJECTED (the shop turned the payment down, PayU
    returns the money) used to be ignored, keeping the seat held."""
    reg = shop.registered()
    order_id = _order(servers, reg["id"])["orderId"]
    servers.payu.set_status(order_id, "REJECTED")
    r = _notify(shop, servers, servers.payu.order_notification(order_id))
    assert r.get_json()["facts"][0]["outcome"] == "payment_failed"
    assert shop.get(reg["id"])["status"] == "awaiting_payment"
    assert shop.event_now()["tickets_left"] == 50


def test_completion_then_cancellation_keeps_the_payment(shop: Shop, servers: Servers) -> None:
    reg = shop.registered()
    order_id = _order(servers, reg["id"])["orderId"]
    servers.payu.set_status(order_id, "COMPLETED")
    _notify(shop, servers, servers.payu.order_notification(order_id))
    servers.payu.set_status(order_id, "CANCELED")
    r = _notify(shop, servers, servers.payu.order_notification(order_id))
    assert r.get_json()["facts"][0]["outcome"] == "superseded_by_payment"
    assert shop.get(reg["id"])["status"] == "paid" and shop.event_now()["tickets_sold"] == 1


def test_amount_mismatch(shop: Shop, servers: Servers) -> None:
    reg = shop.registered()
    order_id = _order(servers, reg["id"])["orderId"]
    servers.payu.set_status(order_id, "COMPLETED")
    payload = servers.payu.order_notification(order_id)
    payload["order"]["totalAmount"] = "100"
    r = _notify(shop, servers, payload)
    assert r.get_json()["facts"][0]["outcome"] == "payment_mismatch"
    got = shop.get(reg["id"])
    assert got["status"] == "awaiting_payment"
    assert got["payment_mismatches"][0]["amount"] == {"amount": "1.00", "currency": "PLN"}


def test_partial_and_full_refunds(shop: Shop, servers: Servers) -> None:
    reg = shop.registered()
    order_id = _order(servers, reg["id"])["orderId"]
    servers.payu.set_status(order_id, "COMPLETED")
    _notify(shop, servers, servers.payu.order_notification(order_id))
    pending = servers.payu.refund(order_id, 2050, status="PENDING")
    r = _notify(shop, servers, servers.payu.refund_notification(order_id, pending))
    assert r.get_json()["facts"] == []  # a pending refund moved no money
    part = servers.payu.refund(order_id, 2050)
    r = _notify(shop, servers, servers.payu.refund_notification(order_id, part))
    assert r.get_json()["facts"][0]["outcome"] == "refund_recorded"
    got = shop.get(reg["id"])
    assert (got["refunded"]["amount"], got["refunds"][0]["reference"]) == ("20.50", part["refundId"])
    rest = servers.payu.refund(order_id, 10000)
    _notify(shop, servers, servers.payu.refund_notification(order_id, rest))
    got = shop.get(reg["id"])
    assert (got["status"], got["refunded"]["amount"], got["refund_due"]["amount"]) == ("refunded", "120.50", "0.00")


def test_return_page_asks_payu(shop: Shop, servers: Servers) -> None:
    reg = shop.registered()
    order_id = _order(servers, reg["id"])["orderId"]
    assert shop.back(reg["id"]).get_json()["status"] == "awaiting_payment"  # NEW: nothing yet
    servers.payu.set_status(order_id, "COMPLETED")
    assert shop.back(reg["id"], error="501").get_json()["status"] == "paid"


def test_payu_is_pln_only_and_poland_only(client: FlaskClient, make_org: Any, servers: Servers) -> None:
    pl = make_org(country="PL", providers=())
    assert connect(client, pl, "payu", servers.payu.credentials()).status_code == 201
    base = {"title": "W", "starts_at": "2037-12-01T18:00:00+01:00", "provider": "payu"}
    for currency in ("EUR", "USD", "HUF"):
        r = client.post(
            "/v1/events", json={**base, "price": {"amount": "10.00", "currency": currency}}, headers=pl.headers
        )
        assert (r.status_code, r.get_json()["code"]) == (422, "currency_not_supported_by_provider"), currency
    us = make_org(country="US", providers=())
    r = connect(client, us, "payu", servers.payu.credentials())
    assert (r.status_code, r.get_json()["code"]) == (422, "provider_not_available_in_country")


def test_outage_then_retry(shop: Shop, servers: Servers) -> None:
    servers.payu.fail_next(1, 503, path=r"/api/v2_1/orders")
    assert shop.register(key="payu-outage").status_code == 503
    r = shop.register(key="payu-outage")
    assert r.status_code == 201, r.get_json()
    assert len(servers.payu.orders) == 1


def test_lost_order_answer_cancels_that_order_and_opens_another(
    shop: Shop, servers: Servers, provider_ledger: Ledger
) -> None:
    """PayU has no idempotency key: a lost answer leaves an order we cannot
    show again.  Issue 18: the retry cancels it at PayU (nobody can pay it)
    and opens a new one, so the participant pays exactly one order; the old
    order's cancellation does not release the new checkout's seat."""
    servers.payu.delay_next(1, SLOW, execute=True, path=r"/api/v2_1/orders")
    assert shop.register(key="payu-lost").status_code == 503
    r = shop.register(key="payu-lost")
    assert r.status_code == 201, r.get_json()
    first, second = list(servers.payu.orders.values())
    rid = first["extOrderId"]
    assert servers.payu.cancelled_by_api == [first["orderId"]]
    assert second["extOrderId"] == f"{rid}~2" and r.get_json()["checkout"]["url"].startswith(servers.payu.base_url)
    assert shop.reference(rid) == second["orderId"]
    assert shop.event_now()["tickets_left"] == 49
    # PayU notifies the cancelled first order: an earlier checkout, the seat stays held.
    assert _notify(shop, servers, servers.payu.order_notification(first["orderId"])).get_json()["facts"][0][
        "outcome"] == "earlier_checkout_failed"
    assert shop.event_now()["tickets_left"] == 49
    # The participant pays the second order: booked once, for the registration.
    servers.payu.set_status(second["orderId"], "COMPLETED")
    _notify(shop, servers, servers.payu.order_notification(second["orderId"]))
    got = shop.get(rid)
    assert got["status"] == "paid" and [p["reference"] for p in got["payments"]] == [second["orderId"]]


def test_an_order_waiting_for_confirmation_is_recorded_and_confirmed(shop: Shop, servers: Servers) -> None:
    """Issue 18 item 4: WAITING_FOR_CONFIRMATION sends the participant to the
    success page; the first release never booked it.  Now it is recorded
    (``PaymentAuthorized``) and confirmed at PayU while the seat is held."""
    reg = shop.registered()
    order_id = shop.reference(reg["id"])
    servers.payu.set_status(order_id, "WAITING_FOR_CONFIRMATION")
    r = _notify(shop, servers, servers.payu.order_notification(order_id))
    assert r.status_code == 200
    assert r.get_json()["facts"][0]["outcome"] == "captured:payment_recorded"
    assert servers.payu.confirmed_by_api == [order_id]
    got = shop.get(reg["id"])
    assert got["status"] == "paid" and got["paid"]["amount"] == "120.50"
    assert got["payment_authorizations"] == [
        {"amount": {"amount": "120.50", "currency": "PLN"}, "provider": "payu", "reference": order_id}]
    # PayU's COMPLETED notification after the confirmation: the same payment.
    r = _notify(shop, servers, servers.payu.order_notification(order_id))
    assert r.get_json()["facts"][0]["outcome"] == "duplicate:payment_recorded"
    assert len(shop.get(reg["id"])["payments"]) == 1


def test_an_order_waiting_for_confirmation_of_a_rejected_participant_is_released(
    shop: Shop, servers: Servers, client: FlaskClient
) -> None:
    reg = shop.registered()
    order_id = shop.reference(reg["id"])
    r = client.post(f"/v1/registrations/{reg['id']}/reject", json={"reason": "duplicate"}, headers=shop.org.headers)
    assert r.status_code == 200, r.get_json()
    servers.payu.set_status(order_id, "WAITING_FOR_CONFIRMATION")
    r = _notify(shop, servers, servers.payu.order_notification(order_id))
    assert r.get_json()["facts"][0]["outcome"].startswith("not_captured_rejected")
    # Released at PayU (the payer gets the money back from PayU), never booked.
    assert servers.payu.cancelled_by_api == [order_id] and servers.payu.confirmed_by_api == []
    got = shop.get(reg["id"])
    assert got["paid"]["amount"] == "0.00" and got["refund_due"]["amount"] == "0.00"
    assert len(got["payment_authorizations"]) == 1
