"""PayuGateway against the PayU contract server (R3, R8)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ledger.errors import (
    CurrencyNotSupportedByProvider,
    InvalidSignature,
    ProviderCredentialsInvalid,
    ProviderUnavailable,
    ValidationFailed,
)
from ledger.money import Money
from ledger.providers.base import CheckoutRequest, PaymentGateway
from ledger.providers.payu_gateway import PayuPaymentLinkLost
from ledger.providers.registry import ProviderEndpoints, gateway_for
from tests.contracts.http_stub import WebhookSink
from tests.contracts.payu_contract import PayuContractServer

TIMEOUT = 1.0  # seconds per HTTP call: generous for a loaded CI machine
SLOW = 2.5  # an injected delay longer than TIMEOUT

MakeRequest = Callable[..., CheckoutRequest]


@pytest.fixture
def gateway(payu_server: PayuContractServer) -> PaymentGateway:
    endpoints = ProviderEndpoints(payu_api_base=payu_server.base_url, timeout_seconds=TIMEOUT)
    return gateway_for("payu", endpoints)


@pytest.fixture
def pln_request(make_request: MakeRequest) -> MakeRequest:
    def make(**overrides: object) -> CheckoutRequest:
        return make_request(**{"price": Money(12345, "PLN"), **overrides})

    return make


# -- credentials (R3) ---------------------------------------------------------


def test_valid_credentials_obtain_a_token(gateway: PaymentGateway, payu_server: PayuContractServer) -> None:
    gateway.validate_credentials(payu_server.credentials())
    (oauth,) = payu_server.requests_to("POST", "/pl/standard/user/oauth/authorize")
    assert dict(oauth.form())["grant_type"] == "client_credentials"


def test_wrong_secret_second_key_shape_and_missing_fields_are_refused(
    gateway: PaymentGateway, payu_server: PayuContractServer
) -> None:
    with pytest.raises(ProviderCredentialsInvalid, match="client"):
        gateway.validate_credentials(payu_server.credentials(client_secret="f" * 32))
    with pytest.raises(ProviderCredentialsInvalid) as caught:
        gateway.validate_credentials(payu_server.credentials(second_key="not-md5"))
    assert caught.value.field == "second_key"
    with pytest.raises(ValidationFailed) as missing:
        gateway.validate_credentials(payu_server.credentials(pos_id=""))
    assert missing.value.errors() == {"pos_id": ["is required"]}


# -- checkout -------------------------------------------------------------------


def test_order_is_created_from_the_302_answer_without_following_it(
    gateway: PaymentGateway, payu_server: PayuContractServer, pln_request: MakeRequest
) -> None:
    checkout = gateway.start_checkout(payu_server.credentials(), pln_request())

    order = payu_server.orders[checkout.reference]
    assert checkout.provider == "payu"
    assert checkout.url.startswith(f"{payu_server.base_url}/pay/?orderId={checkout.reference}")
    (post,) = payu_server.requests_to("POST", "/api/v2_1/orders")
    body = post.json()
    assert body["extOrderId"] == "reg-0001"
    assert body["totalAmount"] == "12345"  # grosze, as a string (R8)
    assert body["currencyCode"] == "PLN"
    assert body["merchantPosId"] == payu_server.pos_id
    assert body["notifyUrl"] == "https://ledger.test/v1/webhooks/provider/conn-1"
    assert body["continueUrl"].startswith("https://ledger.test/return")
    assert body["buyer"]["email"] == "ada@example.test"
    assert body["customerIp"] == "127.0.0.1"
    assert order["status"] == "NEW"
    assert payu_server.requests_to("GET", "/pay/.*") == []  # redirect not followed


def test_non_pln_prices_are_refused_before_calling_payu(
    gateway: PaymentGateway, payu_server: PayuContractServer, make_request: MakeRequest
) -> None:
    with pytest.raises(CurrencyNotSupportedByProvider):
        gateway.start_checkout(payu_server.credentials(), make_request())
    assert payu_server.requests == []


def test_duplicate_ext_order_id_reuses_a_paid_order_or_cancels_an_open_one(
    gateway: PaymentGateway, payu_server: PayuContractServer, pln_request: MakeRequest
) -> None:
    """Issue 18 item 4: after "order already exists" the participant must
    never be able to pay two orders.  An open order whose link was lost is
    cancelled at PayU and replaced (``extOrderId`` ``reg-0001~2``); a paid
    (or awaiting-confirmation) one is reused."""
    creds = payu_server.credentials()
    payu_server.delay_next(1, SLOW, path="/api/v2_1/orders")
    with pytest.raises(ProviderUnavailable):
        gateway.start_checkout(creds, pln_request())  # PayU made it; we never heard
    (made,) = payu_server.orders

    replaced = gateway.start_checkout(creds, pln_request())
    assert payu_server.requests_to("GET", "/api/v2_1/orders/ext/reg-0001")
    assert payu_server.cancelled_by_api == [made] and payu_server.orders[made]["status"] == "CANCELED"
    assert replaced.reference != made and replaced.url.startswith(payu_server.base_url)
    assert payu_server.orders[replaced.reference]["extOrderId"] == "reg-0001~2"

    # Asked again (e.g. its answer lost too) once the new order is paid: reused, no third order.
    payu_server.set_status(replaced.reference, "COMPLETED")
    again = gateway.start_checkout(creds, pln_request())
    assert (again.reference, again.url) == (replaced.reference, pln_request().success_url)
    assert len(payu_server.orders) == 2


def test_an_open_order_that_cannot_be_cancelled_is_a_lost_link(
    gateway: PaymentGateway, payu_server: PayuContractServer, pln_request: MakeRequest
) -> None:
    creds = payu_server.credentials()
    made = gateway.start_checkout(creds, pln_request()).reference
    payu_server.fail_next(1, 400, path=f"/api/v2_1/orders/{made}")  # PayU refuses the DELETE
    with pytest.raises(PayuPaymentLinkLost) as lost:
        gateway.start_checkout(creds, pln_request())
    assert lost.value.reference == made
    assert len(payu_server.orders) == 1


@pytest.mark.parametrize("status", [500, 503])
def test_outage_is_provider_unavailable(
    gateway: PaymentGateway,
    payu_server: PayuContractServer,
    pln_request: MakeRequest,
    status: int,
) -> None:
    payu_server.fail_next(1, status, path="/api/v2_1/orders")
    with pytest.raises(ProviderUnavailable):
        gateway.start_checkout(payu_server.credentials(), pln_request())
    assert payu_server.orders == {}
    assert gateway.start_checkout(payu_server.credentials(), pln_request()).url


def test_oauth_timeout_is_provider_unavailable(gateway: PaymentGateway, payu_server: PayuContractServer) -> None:
    payu_server.delay_next(1, SLOW, execute=False)
    with pytest.raises(ProviderUnavailable, match="did not answer"):
        gateway.validate_credentials(payu_server.credentials())


def test_another_pos_is_a_credentials_problem(
    gateway: PaymentGateway, payu_server: PayuContractServer, pln_request: MakeRequest
) -> None:
    with pytest.raises(ProviderCredentialsInvalid, match="pos_id"):
        gateway.start_checkout(payu_server.credentials(pos_id="999999"), pln_request())


# -- notification signatures ----------------------------------------------------


def _order(gateway: PaymentGateway, server: PayuContractServer, make: MakeRequest) -> str:
    return gateway.start_checkout(server.credentials(), make()).reference


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256", "SHA256"])
def test_signature_algorithms_are_accepted(
    gateway: PaymentGateway,
    payu_server: PayuContractServer,
    pln_request: MakeRequest,
    algorithm: str,
) -> None:
    order_id = _order(gateway, payu_server, pln_request)
    payu_server.set_status(order_id, "COMPLETED")
    headers, body = payu_server.signed(payu_server.order_notification(order_id), algorithm=algorithm)
    (paid,) = gateway.parse_notification(payu_server.credentials(), headers, body)
    assert paid.kind == "paid"


@pytest.mark.parametrize("variant", ["tampered", "wrong_key"])
def test_bad_signatures_are_refused(
    gateway: PaymentGateway,
    payu_server: PayuContractServer,
    pln_request: MakeRequest,
    variant: str,
) -> None:
    order_id = _order(gateway, payu_server, pln_request)
    payload = payu_server.order_notification(order_id)
    headers, body = payu_server.signed(payload, variant=variant)  # type: ignore[arg-type]
    with pytest.raises(InvalidSignature):
        gateway.parse_notification(payu_server.credentials(), headers, body)


def test_missing_header_and_unknown_algorithm_are_refused(
    gateway: PaymentGateway, payu_server: PayuContractServer, pln_request: MakeRequest
) -> None:
    order_id = _order(gateway, payu_server, pln_request)
    headers, body = payu_server.signed(payu_server.order_notification(order_id))
    with pytest.raises(InvalidSignature, match="missing"):
        gateway.parse_notification(payu_server.credentials(), {}, body)
    weak = {"OpenPayu-Signature": headers["OpenPayu-Signature"].replace("MD5", "CRC32")}
    with pytest.raises(InvalidSignature, match="algorithm"):
        gateway.parse_notification(payu_server.credentials(), weak, body)


# -- notification mapping -------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        ("PENDING", "pending"),
        ("WAITING_FOR_CONFIRMATION", "authorized"),  # issue 18 item 4: used to be "pending", never booked
        ("COMPLETED", "paid"),
        ("CANCELED", "failed"),
        ("REJECTED", "failed"),  # issue 18 item 6: used to be ignored
    ],
)
def test_order_statuses_map_to_kinds(
    gateway: PaymentGateway,
    payu_server: PayuContractServer,
    webhook_sink: WebhookSink,
    pln_request: MakeRequest,
    status: str,
    kind: str,
) -> None:
    order_id = _order(gateway, payu_server, pln_request)
    payu_server.set_status(order_id, status)
    assert payu_server.deliver_notification(webhook_sink.url, payu_server.order_notification(order_id)) == 200
    headers, body = webhook_sink.received[0]

    (found,) = gateway.parse_notification(payu_server.credentials(), headers, body)
    assert (found.kind, found.registration_id, found.reference) == (kind, "reg-0001", order_id)
    assert found.provider_event_id == f"{order_id}:{status}"
    assert found.amount == (Money(12345, "PLN") if kind in ("paid", "authorized") else None)


def test_new_orders_and_unknown_documents_tell_nothing(
    gateway: PaymentGateway, payu_server: PayuContractServer, pln_request: MakeRequest
) -> None:
    order_id = _order(gateway, payu_server, pln_request)
    creds = payu_server.credentials()
    payloads: list[dict[str, object]] = [payu_server.order_notification(order_id), {}]
    for payload in payloads:
        assert gateway.parse_notification(creds, *payu_server.signed(payload)) == []


def test_finalized_refunds_are_refunded_with_their_own_amount(
    gateway: PaymentGateway, payu_server: PayuContractServer, pln_request: MakeRequest
) -> None:
    order_id = _order(gateway, payu_server, pln_request)
    payu_server.set_status(order_id, "COMPLETED")
    creds = payu_server.credentials()
    partial = payu_server.refund(order_id, 2345)
    pending = payu_server.refund(order_id, 100, status="PENDING")
    (refunded,) = gateway.parse_notification(
        creds, *payu_server.signed(payu_server.refund_notification(order_id, partial))
    )
    assert (refunded.kind, refunded.amount) == ("refunded", Money(2345, "PLN"))
    assert refunded.provider_event_id == f"refund:{partial['refundId']}"
    assert refunded.registration_id == "reg-0001"
    waiting = payu_server.refund_notification(order_id, pending)
    assert gateway.parse_notification(creds, *payu_server.signed(waiting)) == []


def test_fetch_status_polls_the_order_with_the_notification_fact_id(
    gateway: PaymentGateway, payu_server: PayuContractServer, pln_request: MakeRequest
) -> None:
    creds = payu_server.credentials()
    order_id = _order(gateway, payu_server, pln_request)
    assert gateway.fetch_status(creds, order_id) is None  # NEW: nothing yet
    payu_server.set_status(order_id, "COMPLETED")
    polled = gateway.fetch_status(creds, order_id)
    assert polled is not None
    assert (polled.kind, polled.amount) == ("paid", Money(12345, "PLN"))
    assert polled.provider_event_id == f"{order_id}:COMPLETED"
    assert gateway.fetch_status(creds, "UNKNOWNORDER") is None
