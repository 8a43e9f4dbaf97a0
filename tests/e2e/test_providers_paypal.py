"""PayPal end to end through the HTTP API and the PayPal contract server (R2, R8, R15)."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from ledger.container import Ledger
from tests.e2e import test_providers_support as kit
from tests.e2e.test_providers_support import SLOW, Servers, Shop, facts, inbox_rows, open_shop

# The module's own ledger, app and provider wiring (see test_providers_support).
app = kit.app
provider_ledger = kit.provider_ledger
servers = kit.servers
tokens = kit.tokens


@pytest.fixture
def shop(client: FlaskClient, make_org: Any, servers: Servers) -> Shop:
    return open_shop(client, make_org, servers, "paypal", price="25.00", currency="EUR")


def _deliver(shop: Shop, servers: Servers, event_type: str, resource: dict[str, Any], **kw: Any) -> Any:
    resource_type = "checkout-order" if event_type.startswith("CHECKOUT.") else "capture"
    headers, body = servers.paypal.signed(servers.paypal.event(event_type, resource, resource_type), **kw)
    return shop.webhook(headers, body)


def _capture_of(servers: Servers, order_id: str) -> dict[str, Any]:
    return next(
        c for c in servers.paypal.captures.values() if c["supplementary_data"]["related_ids"]["order_id"] == order_id
    )


def test_approval_then_return_captures_and_the_capture_webhook_is_a_duplicate(
    shop: Shop, servers: Servers, provider_ledger: Ledger
) -> None:
    reg = shop.registered()
    order_id = shop.reference(reg["id"])
    assert reg["checkout"]["url"] == f"{servers.paypal.base_url}/checkoutnow?token={order_id}"
    order = servers.paypal.orders[order_id]
    assert order["purchase_units"][0]["custom_id"] == reg["id"]
    assert order["purchase_units"][0]["amount"] == {"currency_code": "EUR", "value": "25.00"}
    # Back before approving: nothing to capture yet.
    assert shop.back(reg["id"], token=order_id).get_json()["status"] == "awaiting_payment"
    servers.paypal.approve(order_id)
    r = shop.back(reg["id"], token=order_id, PayerID="PAYER1")
    assert (r.status_code, r.get_json()["status"]) == (200, "paid")
    capture = _capture_of(servers, order_id)
    r = _deliver(shop, servers, "PAYMENT.CAPTURE.COMPLETED", capture)
    assert r.get_json()["facts"][0]["outcome"] == "duplicate:payment_recorded"
    got = shop.get(reg["id"])
    assert got["payments"] == [
        {"amount": {"amount": "25.00", "currency": "EUR"}, "provider": "paypal", "method": None, "reference": order_id,
         "fee": {"amount": "1.25", "currency": "EUR"}, "fee_policy": "fee-v2"}
    ]
    assert len(servers.paypal.requests_to("POST", r"/v2/checkout/orders/[^/]+/capture")) == 1


def test_approval_webhook_captures_without_the_participant_returning(shop: Shop, servers: Servers) -> None:
    reg = shop.registered()
    order_id = shop.reference(reg["id"])
    approved = servers.paypal.approve(order_id)
    r = _deliver(shop, servers, "CHECKOUT.ORDER.APPROVED", approved)
    assert r.get_json()["facts"][0]["outcome"] == "captured:payment_recorded"
    assert shop.get(reg["id"])["status"] == "paid"
    # The same approval again, and the return afterwards: no second capture.
    _deliver(shop, servers, "CHECKOUT.ORDER.APPROVED", approved)
    assert shop.back(reg["id"]).get_json()["status"] == "paid"
    assert len(servers.paypal.captures) == 1


@pytest.mark.parametrize("variant", ["tampered", "stale", "wrong_key"])
def test_bad_signatures_are_400_and_record_nothing(
    shop: Shop, servers: Servers, provider_ledger: Ledger, variant: str
) -> None:
    reg = shop.registered()
    approved = servers.paypal.approve(shop.reference(reg["id"]))
    r = _deliver(shop, servers, "CHECKOUT.ORDER.APPROVED", approved, variant=variant)
    assert (r.status_code, r.get_json()["code"]) == (400, "invalid_signature")
    assert shop.get(reg["id"])["status"] == "awaiting_payment"
    assert servers.paypal.captures == {}
    assert inbox_rows(provider_ledger, shop.connection_id) == [("invalid_signature", 1)]
    assert facts(provider_ledger, reg["id"]) == []


def test_declined_capture_releases_the_seat(shop: Shop, servers: Servers) -> None:
    reg = shop.registered()
    order_id = shop.reference(reg["id"])
    servers.paypal.approve(order_id)
    servers.paypal.next_capture_status = "DECLINED"
    assert shop.back(reg["id"]).get_json()["status"] == "awaiting_payment"
    got = shop.get(reg["id"])
    assert got["payment_failures"] == [{"reason": "failed", "reference": order_id}]
    assert shop.event_now()["tickets_left"] == 50


def test_capture_during_an_outage_is_retried_by_the_next_return(shop: Shop, servers: Servers) -> None:
    reg = shop.registered()
    order_id = shop.reference(reg["id"])
    servers.paypal.approve(order_id)
    servers.paypal.fail_next(1, 503, path=r"/v2/checkout/orders/[^/]+/capture")
    r = shop.back(reg["id"])
    assert (r.status_code, r.get_json()["code"]) == (503, "provider_unavailable")
    assert shop.back(reg["id"]).get_json()["status"] == "paid"


def test_partial_and_full_refunds(shop: Shop, servers: Servers) -> None:
    reg = shop.registered()
    order_id = shop.reference(reg["id"])
    servers.paypal.approve(order_id)
    shop.back(reg["id"])
    capture = _capture_of(servers, order_id)
    part = servers.paypal.refund(capture["id"], "5.00")
    r = _deliver(
        shop,
        servers,
        "PAYMENT.CAPTURE.REFUNDED",
        part,
    )
    assert r.get_json()["facts"][0]["outcome"] == "refund_recorded"
    assert shop.get(reg["id"])["refunded"]["amount"] == "5.00"
    rest = servers.paypal.refund(capture["id"], "20.00")
    _deliver(shop, servers, "PAYMENT.CAPTURE.REFUNDED", rest)
    _deliver(shop, servers, "PAYMENT.CAPTURE.REFUNDED", rest)
    got = shop.get(reg["id"])
    assert (got["status"], got["refunded"]["amount"]) == ("refunded", "25.00")
    assert sorted(r["reference"] for r in got["refunds"]) == sorted([part["id"], rest["id"]])


def test_lost_order_answer_then_retry_returns_the_same_order(shop: Shop, servers: Servers) -> None:
    servers.paypal.delay_next(1, SLOW, execute=True, path=r"/v2/checkout/orders")
    assert shop.register(key="pp-lost").status_code == 503
    assert len(servers.paypal.orders) == 1
    r = shop.register(key="pp-lost")
    assert r.status_code == 201, r.get_json()
    assert len(servers.paypal.orders) == 1
    assert r.get_json()["checkout"]["url"].endswith(next(iter(servers.paypal.orders)))


def test_genuine_retries_after_an_outage_are_accepted_and_book_once(
    shop: Shop, servers: Servers, provider_ledger: Ledger
) -> None:
    """Issue 18 item 3: PayPal retries an unanswered delivery for up to 3 days,
    with the same event (id, create_time) in a new transmission.  A delivery
    whose transmission is an hour old -- a resend, or one queued behind our
    outage -- is genuine and must be accepted; de-duplication by fact id keeps
    it harmless.  A forged one is still refused."""
    from datetime import UTC, datetime, timedelta

    reg = shop.registered()
    order_id = shop.reference(reg["id"])
    servers.paypal.approve(order_id)
    assert shop.back(reg["id"], token=order_id).get_json()["status"] == "paid"
    event = servers.paypal.event("PAYMENT.CAPTURE.COMPLETED", _capture_of(servers, order_id), "capture")
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    event["create_time"] = an_hour_ago.isoformat(timespec="seconds").replace("+00:00", "Z")
    # The first transmission, an hour ago, never got a 2xx (our outage).
    headers, body = servers.paypal.signed(event, transmission_time=an_hour_ago)
    r = shop.webhook(headers, body)
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["facts"][0]["outcome"] == "duplicate:payment_recorded"
    # PayPal's retry now: same event, new transmission id, time and signature.
    headers2, body2 = servers.paypal.signed(event)
    assert body2 == body and headers2["PAYPAL-TRANSMISSION-ID"] != headers["PAYPAL-TRANSMISSION-ID"]
    r = shop.webhook(headers2, body2)
    assert (r.status_code, r.get_json()["facts"][0]["outcome"]) == (200, "duplicate:payment_recorded")
    # A forged retry (body changed after signing, or signed for another webhook) is refused.
    for variant in ("tampered", "wrong_key"):
        headers3, body3 = servers.paypal.signed(event, variant=variant, transmission_time=an_hour_ago)  # type: ignore[arg-type]
        r = shop.webhook(headers3, body3)
        assert (r.status_code, r.get_json()["code"]) == (400, "invalid_signature")
    # Beyond PayPal's retry horizon, or from the future: refused before asking PayPal.
    for sent in (datetime.now(UTC) - timedelta(days=5), datetime.now(UTC) + timedelta(minutes=10)):
        headers4, body4 = servers.paypal.signed(event, transmission_time=sent)
        assert shop.webhook(headers4, body4).status_code == 400
    got = shop.get(reg["id"])
    assert len(got["payments"]) == 1 and got["paid"]["amount"] == "25.00"


def test_a_retry_after_paypal_forgot_the_request_id_opens_a_new_order_and_only_it_is_captured(
    shop: Shop, servers: Servers
) -> None:
    """Issue 18 item 5 (docs/providers.md): PayPal keeps a PayPal-Request-Id
    for 6 hours.  A registration whose order answer was lost and that is
    retried later gets a *second* order (the key is forgotten); the ledger
    records and uses only the second, and never captures the first even if
    someone approved it, so nobody pays twice."""
    servers.paypal.delay_next(1, SLOW, execute=True, path=r"/v2/checkout/orders")
    assert shop.register(key="pp-6h").status_code == 503
    servers.paypal.forget_request_ids()  # six hours later
    r = shop.register(key="pp-6h")
    assert r.status_code == 201, r.get_json()
    first, second = list(servers.paypal.orders)
    rid = r.get_json()["id"]
    assert shop.reference(rid) == second
    approved = servers.paypal.approve(first)
    r = _deliver(shop, servers, "CHECKOUT.ORDER.APPROVED", approved)
    assert r.get_json()["facts"][0]["outcome"].startswith("not_captured_earlier_checkout")
    assert servers.paypal.captures == {}
    servers.paypal.approve(second)
    assert shop.back(rid, token=second).get_json()["status"] == "paid"
    assert len(servers.paypal.captures) == 1
