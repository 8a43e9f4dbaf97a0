"""PaypalGateway against the PayPal contract server (R2, R8)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from ledger.errors import (
    InvalidSignature,
    ProviderCredentialsInvalid,
    ProviderUnavailable,
)
from ledger.money import Money
from ledger.providers.base import (
    CapturingGateway,
    CheckoutRequest,
    Notification,
    ProviderRejectedRequest,
)
from ledger.providers.registry import ProviderEndpoints, gateway_for
from tests.contracts.http_stub import WebhookSink
from tests.contracts.paypal_contract import PaypalContractServer

TIMEOUT = 1.0  # seconds per HTTP call: generous for a loaded CI machine
SLOW = 2.5  # an injected delay longer than TIMEOUT

MakeRequest = Callable[..., CheckoutRequest]


def fact(found: Notification | None) -> tuple[object, ...]:
    """A notification without ``raw_type``, which names the route it came by."""
    assert found is not None
    return (found.provider_event_id, found.kind, found.registration_id, found.reference, found.amount)


@pytest.fixture
def gateway(paypal_server: PaypalContractServer) -> CapturingGateway:
    endpoints = ProviderEndpoints(paypal_api_base=paypal_server.base_url, timeout_seconds=TIMEOUT)
    found = gateway_for("paypal", endpoints)
    assert isinstance(found, CapturingGateway)
    return found


def _captured(gateway: CapturingGateway, server: PaypalContractServer, make_request: MakeRequest) -> tuple[str, str]:
    """(order id, capture id) of a paid order."""
    creds = server.credentials()
    order_id = gateway.start_checkout(creds, make_request()).reference
    server.approve(order_id)
    gateway.capture(creds, order_id)
    return order_id, next(iter(server.captures))


# -- credentials (R2) ---------------------------------------------------------


def test_valid_credentials_and_webhook_id(gateway: CapturingGateway, paypal_server: PaypalContractServer) -> None:
    gateway.validate_credentials(paypal_server.credentials())
    (oauth,) = paypal_server.requests_to("POST", "/v1/oauth2/token")
    assert (oauth.header("Authorization") or "").startswith("Basic ")


def test_wrong_secret_and_unknown_webhook_are_refused(
    gateway: CapturingGateway, paypal_server: PaypalContractServer
) -> None:
    with pytest.raises(ProviderCredentialsInvalid, match="client id or secret"):
        gateway.validate_credentials(paypal_server.credentials(client_secret="wrong"))
    with pytest.raises(ProviderCredentialsInvalid) as caught:
        gateway.validate_credentials(paypal_server.credentials(webhook_id="WH-NOPE"))
    assert caught.value.field == "webhook_id"


# -- checkout and capture -------------------------------------------------------


def test_order_carries_custom_id_decimal_amount_and_request_id(
    gateway: CapturingGateway, paypal_server: PaypalContractServer, make_request: MakeRequest
) -> None:
    checkout = gateway.start_checkout(paypal_server.credentials(), make_request())

    (post,) = paypal_server.requests_to("POST", "/v2/checkout/orders")
    unit = post.json()["purchase_units"][0]
    assert post.header("PayPal-Request-Id") == "order-reg-0001"
    assert post.json()["intent"] == "CAPTURE"
    assert unit["custom_id"] == "reg-0001"
    assert unit["amount"] == {"currency_code": "USD", "value": "49.00"}
    assert checkout.url == f"{paypal_server.base_url}/checkoutnow?token={checkout.reference}"
    assert paypal_server.orders[checkout.reference]["status"] == "PAYER_ACTION_REQUIRED"


def test_request_id_replays_the_same_order_also_after_a_lost_response(
    gateway: CapturingGateway, paypal_server: PaypalContractServer, make_request: MakeRequest
) -> None:
    creds = paypal_server.credentials()
    paypal_server.delay_next(1, SLOW, path="/v2/checkout/orders")
    with pytest.raises(ProviderUnavailable):
        gateway.start_checkout(creds, make_request())
    (made,) = paypal_server.orders

    first = gateway.start_checkout(creds, make_request())
    assert first == gateway.start_checkout(creds, make_request())
    assert first.reference == made
    assert len(paypal_server.orders) == 1


def test_capture_needs_approval_then_is_paid_once(
    gateway: CapturingGateway, paypal_server: PaypalContractServer, make_request: MakeRequest
) -> None:
    creds = paypal_server.credentials()
    order_id = gateway.start_checkout(creds, make_request()).reference
    with pytest.raises(ProviderRejectedRequest, match="ORDER_NOT_APPROVED"):
        gateway.capture(creds, order_id)

    paypal_server.approve(order_id)
    paid = gateway.capture(creds, order_id)
    again = gateway.capture(creds, order_id)  # replayed by PayPal-Request-Id

    assert (paid.kind, paid.amount, paid.reference) == ("paid", Money(4900, "USD"), order_id)
    assert paid.registration_id == "reg-0001"
    assert fact(again) == fact(paid)
    assert len(paypal_server.captures) == 1
    captures = paypal_server.requests_to("POST", f"/v2/checkout/orders/{order_id}/capture")
    assert {r.header("PayPal-Request-Id") for r in captures} == {f"capture-{order_id}"}


def test_capture_asks_for_the_representation_and_survives_a_minimal_answer(
    gateway: CapturingGateway, paypal_server: PaypalContractServer, make_request: MakeRequest
) -> None:
    """Issue 18 item 4: PayPal answers ``return=minimal`` by default; the
    gateway used to raise "has no capture" although the money was taken."""
    creds = paypal_server.credentials()
    order_id = gateway.start_checkout(creds, make_request()).reference
    paypal_server.approve(order_id)
    paypal_server.minimal_captures = True  # the answer carries no capture
    paid = gateway.capture(creds, order_id)
    assert (paid.kind, paid.amount, paid.reference) == ("paid", Money(4900, "USD"), order_id)
    assert len(paypal_server.captures) == 1
    captures = paypal_server.requests_to("POST", f"/v2/checkout/orders/{order_id}/capture")
    assert [r.header("Prefer") for r in captures] == ["return=representation"]


def test_already_captured_order_answers_from_the_order(
    gateway: CapturingGateway, paypal_server: PaypalContractServer, make_request: MakeRequest
) -> None:
    creds = paypal_server.credentials()
    order_id, _ = _captured(gateway, paypal_server, make_request)
    paypal_server.forget_request_ids()  # now PayPal says ORDER_ALREADY_CAPTURED
    assert fact(gateway.capture(creds, order_id)) == fact(gateway.fetch_status(creds, order_id))
    assert len(paypal_server.captures) == 1


def test_declined_capture_is_failed(
    gateway: CapturingGateway, paypal_server: PaypalContractServer, make_request: MakeRequest
) -> None:
    creds = paypal_server.credentials()
    order_id = gateway.start_checkout(creds, make_request()).reference
    paypal_server.approve(order_id)
    paypal_server.next_capture_status = "DECLINED"
    declined = gateway.capture(creds, order_id)
    assert (declined.kind, declined.amount) == ("failed", None)


def test_outage_and_timeout_are_provider_unavailable(
    gateway: CapturingGateway, paypal_server: PaypalContractServer, make_request: MakeRequest
) -> None:
    creds = paypal_server.credentials()
    paypal_server.fail_next(1, 503, path="/v2/checkout/orders")
    with pytest.raises(ProviderUnavailable):
        gateway.start_checkout(creds, make_request())
    paypal_server.delay_next(1, SLOW, execute=False, path="/v1/oauth2/token")
    with pytest.raises(ProviderUnavailable):
        gateway.start_checkout(creds, make_request())
    assert paypal_server.orders == {}
    assert gateway.start_checkout(creds, make_request()).url


# -- webhook verification -------------------------------------------------------


def test_delivered_capture_completed_is_verified_and_paid(
    gateway: CapturingGateway,
    paypal_server: PaypalContractServer,
    webhook_sink: WebhookSink,
    make_request: MakeRequest,
) -> None:
    order_id, capture_id = _captured(gateway, paypal_server, make_request)
    event = paypal_server.event("PAYMENT.CAPTURE.COMPLETED", paypal_server.captures[capture_id])
    assert paypal_server.deliver_event(webhook_sink.url, event) == 200
    headers, body = webhook_sink.received[0]

    (paid,) = gateway.parse_notification(paypal_server.credentials(), headers, body)
    assert (paid.kind, paid.reference, paid.amount) == ("paid", order_id, Money(4900, "USD"))
    assert paid.provider_event_id == f"capture:{capture_id}:COMPLETED"
    assert fact(paid) == fact(gateway.capture(paypal_server.credentials(), order_id))
    (verify,) = paypal_server.requests_to("POST", "/v1/notifications/verify-webhook-signature")
    assert verify.json()["webhook_id"] == paypal_server.webhook_id


@pytest.mark.parametrize("variant", ["tampered", "stale", "wrong_key"])
def test_bad_signatures_are_refused(
    gateway: CapturingGateway,
    paypal_server: PaypalContractServer,
    make_request: MakeRequest,
    variant: str,
) -> None:
    _, capture_id = _captured(gateway, paypal_server, make_request)
    event = paypal_server.event("PAYMENT.CAPTURE.COMPLETED", paypal_server.captures[capture_id])
    headers, body = paypal_server.signed(event, variant=variant)  # type: ignore[arg-type]
    with pytest.raises(InvalidSignature):
        gateway.parse_notification(paypal_server.credentials(), headers, body)


def test_missing_headers_and_the_injected_clock(gateway: CapturingGateway, paypal_server: PaypalContractServer) -> None:
    creds = paypal_server.credentials()
    sent = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    event = paypal_server.event("BILLING.PLAN.CREATED", {"id": "P-1"}, "plan")
    headers, body = paypal_server.signed(event, transmission_time=sent)
    with pytest.raises(InvalidSignature, match="PAYPAL-TRANSMISSION-SIG"):
        gateway.parse_notification(creds, {"PAYPAL-TRANSMISSION-ID": "x"}, body)
    assert gateway.parse_notification(creds, headers, body, now=sent) == []
    # Late is fine up to PayPal's retry horizon (issue 18); the future is not.
    assert gateway.parse_notification(creds, headers, body, now=sent + timedelta(days=3, hours=1)) == []
    with pytest.raises(InvalidSignature, match="retry horizon"):
        gateway.parse_notification(creds, headers, body, now=sent + timedelta(days=4, minutes=1))
    with pytest.raises(InvalidSignature, match="future"):
        gateway.parse_notification(creds, headers, body, now=sent - timedelta(minutes=6))


def test_verification_outage_is_provider_unavailable_so_paypal_retries(
    gateway: CapturingGateway, paypal_server: PaypalContractServer
) -> None:
    event = paypal_server.event("CHECKOUT.ORDER.APPROVED", {"id": "X"}, "checkout-order")
    paypal_server.fail_next(1, 500, path="/v1/notifications/verify-webhook-signature")
    with pytest.raises(ProviderUnavailable):
        gateway.parse_notification(paypal_server.credentials(), *paypal_server.signed(event))


# -- mapping and status ---------------------------------------------------------


def test_approved_order_is_pending_for_the_service_to_capture(
    gateway: CapturingGateway, paypal_server: PaypalContractServer, make_request: MakeRequest
) -> None:
    creds = paypal_server.credentials()
    order_id = gateway.start_checkout(creds, make_request()).reference
    order = paypal_server.approve(order_id)
    event = paypal_server.event("CHECKOUT.ORDER.APPROVED", order, "checkout-order")
    (pending,) = gateway.parse_notification(creds, *paypal_server.signed(event))
    assert (pending.kind, pending.reference, pending.registration_id) == ("pending", order_id, "reg-0001")


def test_denied_capture_is_failed_and_other_events_are_ignored(
    gateway: CapturingGateway, paypal_server: PaypalContractServer, make_request: MakeRequest
) -> None:
    creds = paypal_server.credentials()
    _, capture_id = _captured(gateway, paypal_server, make_request)
    denied = {**paypal_server.captures[capture_id], "status": "DENIED"}
    event = paypal_server.event("PAYMENT.CAPTURE.DENIED", denied)
    (failed,) = gateway.parse_notification(creds, *paypal_server.signed(event))
    assert failed.kind == "failed"
    other = paypal_server.event("CUSTOMER.DISPUTE.CREATED", {"dispute_id": "PP-D-1"}, "dispute")
    assert gateway.parse_notification(creds, *paypal_server.signed(other)) == []


def test_partial_refund_finds_registration_through_the_capture(
    gateway: CapturingGateway, paypal_server: PaypalContractServer, make_request: MakeRequest
) -> None:
    creds = paypal_server.credentials()
    order_id, capture_id = _captured(gateway, paypal_server, make_request)
    refund = paypal_server.refund(capture_id, "10.00")
    event = paypal_server.event("PAYMENT.CAPTURE.REFUNDED", refund, "refund")
    (refunded,) = gateway.parse_notification(creds, *paypal_server.signed(event))
    assert (refunded.kind, refunded.amount) == ("refunded", Money(1000, "USD"))
    assert (refunded.registration_id, refunded.reference) == ("reg-0001", order_id)
    assert refunded.provider_event_id == f"refund:{refund['id']}"
    assert paypal_server.requests_to("GET", f"/v2/payments/captures/{capture_id}")


def test_fetch_status_through_the_order_life_cycle(
    gateway: CapturingGateway, paypal_server: PaypalContractServer, make_request: MakeRequest
) -> None:
    creds = paypal_server.credentials()
    order_id = gateway.start_checkout(creds, make_request()).reference
    assert gateway.fetch_status(creds, order_id) is None
    paypal_server.approve(order_id)
    approved = gateway.fetch_status(creds, order_id)
    assert approved is not None
    assert approved.kind == "pending"
    gateway.capture(creds, order_id)
    paid = gateway.fetch_status(creds, order_id)
    assert paid is not None
    assert (paid.kind, paid.amount) == ("paid", Money(4900, "USD"))

    voided = gateway.start_checkout(creds, make_request(registration_id="reg-0002"))
    paypal_server.void(voided.reference)
    expired = gateway.fetch_status(creds, voided.reference)
    assert expired is not None
    assert expired.kind == "expired"
