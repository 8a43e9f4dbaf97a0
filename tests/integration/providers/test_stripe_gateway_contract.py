"""StripeGateway against the Stripe contract server (R1, R8)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl

import pytest

from ledger.errors import (
    InvalidSignature,
    ProviderCredentialsInvalid,
    ProviderUnavailable,
    ValidationFailed,
)
from ledger.money import Money
from ledger.providers.base import CheckoutRequest, PaymentGateway, ProviderRejectedRequest
from ledger.providers.registry import ProviderEndpoints, gateway_for
from tests.contracts.http_stub import WebhookSink
from tests.contracts.stripe_contract import StripeContractServer

TIMEOUT = 1.0  # seconds per HTTP call: generous for a loaded CI machine
SLOW = 2.5  # an injected delay longer than TIMEOUT

MakeRequest = Callable[..., CheckoutRequest]


@pytest.fixture
def gateway(stripe_server: StripeContractServer) -> PaymentGateway:
    endpoints = ProviderEndpoints(stripe_api_base=stripe_server.base_url, timeout_seconds=TIMEOUT)
    return gateway_for("stripe", endpoints)


def _paid_session(gateway: PaymentGateway, server: StripeContractServer, make_request: MakeRequest) -> str:
    checkout = gateway.start_checkout(server.credentials(), make_request())
    server.complete(checkout.reference)
    return checkout.reference


# -- credentials (R1) ---------------------------------------------------------


def test_secret_and_fully_permitted_restricted_keys_are_accepted_without_side_effects(
    gateway: PaymentGateway, stripe_server: StripeContractServer
) -> None:
    gateway.validate_credentials(stripe_server.credentials())
    restricted = stripe_server.restricted_key("products", "prices", "checkout_sessions")
    gateway.validate_credentials(stripe_server.credentials(restricted))
    assert stripe_server.products == stripe_server.prices == stripe_server.sessions == {}


def test_wrong_key_is_refused_without_echoing_it(gateway: PaymentGateway, stripe_server: StripeContractServer) -> None:
    wrong = "sk_test_thisisnotarealkey0000"
    with pytest.raises(ProviderCredentialsInvalid) as caught:
        gateway.validate_credentials(stripe_server.credentials(wrong))
    assert caught.value.field == "api_key"
    assert wrong not in caught.value.detail


@pytest.mark.parametrize(
    ("granted", "missing"),
    [
        (("prices", "checkout_sessions"), "Products: Write"),
        (("products", "checkout_sessions"), "Prices: Write"),
        (("products", "prices"), "Checkout Sessions: Write"),
    ],
)
def test_restricted_key_lacking_a_permission_is_told_which(
    gateway: PaymentGateway,
    stripe_server: StripeContractServer,
    granted: tuple[str, ...],
    missing: str,
) -> None:
    key = stripe_server.restricted_key(*granted)
    with pytest.raises(ProviderCredentialsInvalid, match=missing):
        gateway.validate_credentials(stripe_server.credentials(key))


def test_a_permission_probe_answered_404_is_not_taken_as_allowed(
    gateway: PaymentGateway, stripe_server: StripeContractServer
) -> None:
    """Issue 18 item 7: only Stripe's documented answers (400 allowed, 403 not)
    count; a 404 used to pass as "allowed"."""
    stripe_server.fail_next(status=404, path="^/v1/prices")
    with pytest.raises(ProviderRejectedRequest, match="HTTP 404 to the 'Prices: Write' check"):
        gateway.validate_credentials(stripe_server.credentials(stripe_server.restricted_key(
            "products", "prices", "checkout_sessions")))


def test_missing_fields_and_a_non_signing_secret_are_refused_before_any_call(
    gateway: PaymentGateway, stripe_server: StripeContractServer
) -> None:
    # R1 (issue 13 item 1): the key alone is enough; the webhook secret is optional.
    with pytest.raises(ValidationFailed) as caught:
        gateway.validate_credentials({"webhook_secret": stripe_server.webhook_secret})
    assert caught.value.errors() == {"api_key": ["is required"]}
    bad = {**stripe_server.credentials(), "webhook_secret": "not-a-signing-secret"}
    with pytest.raises(ProviderCredentialsInvalid, match="whsec_"):
        gateway.validate_credentials(bad)
    assert stripe_server.requests == []


# -- checkout -------------------------------------------------------------------


def test_checkout_creates_product_price_and_session_form_encoded(
    gateway: PaymentGateway, stripe_server: StripeContractServer, make_request: MakeRequest
) -> None:
    checkout = gateway.start_checkout(stripe_server.credentials(), make_request())

    session = stripe_server.sessions[checkout.reference]
    assert checkout.provider == "stripe"
    assert checkout.url == session["url"]
    assert session["metadata"] == {"registration_id": "reg-0001", "event_id": "evt-0001"}
    assert session["client_reference_id"] == "reg-0001"
    assert session["amount_total"] == 4900
    assert session["currency"] == "usd"
    (post,) = stripe_server.requests_to("POST", "/v1/checkout/sessions")
    form = dict(parse_qsl(post.body.decode()))
    assert post.header("Content-Type") == "application/x-www-form-urlencoded"
    assert post.header("Idempotency-Key") == "checkout-reg-0001"
    assert form["metadata[registration_id]"] == "reg-0001"
    assert form["payment_intent_data[metadata][registration_id]"] == "reg-0001"
    assert form["mode"] == "payment"
    assert form["success_url"].endswith("{CHECKOUT_SESSION_ID}")
    keys = [r.header("Idempotency-Key") for r in stripe_server.requests]
    assert keys == ["product-evt-0001", "price-evt-0001-4900-USD", "checkout-reg-0001"]


def test_retry_returns_the_same_session_and_one_product_and_price_per_event(
    gateway: PaymentGateway, stripe_server: StripeContractServer, make_request: MakeRequest
) -> None:
    creds = stripe_server.credentials()
    first = gateway.start_checkout(creds, make_request())
    again = gateway.start_checkout(creds, make_request())
    other = gateway.start_checkout(creds, make_request(registration_id="reg-0002"))

    assert again == first
    assert other.reference != first.reference
    assert len(stripe_server.sessions) == 2
    assert len(stripe_server.products) == len(stripe_server.prices) == 1


def test_lost_response_then_retry_gives_the_session_stripe_already_made(
    gateway: PaymentGateway, stripe_server: StripeContractServer, make_request: MakeRequest
) -> None:
    creds = stripe_server.credentials()
    stripe_server.delay_next(1, SLOW, path="/v1/checkout/sessions")
    with pytest.raises(ProviderUnavailable):
        gateway.start_checkout(creds, make_request())
    assert len(stripe_server.sessions) == 1  # Stripe made it; we never heard

    checkout = gateway.start_checkout(creds, make_request())
    assert checkout.reference == next(iter(stripe_server.sessions))
    assert len(stripe_server.sessions) == 1


def test_after_idempotency_keys_expire_product_and_price_are_found_again(
    gateway: PaymentGateway, stripe_server: StripeContractServer, make_request: MakeRequest
) -> None:
    creds = stripe_server.credentials()
    gateway.start_checkout(creds, make_request())
    stripe_server.forget_idempotency_keys()
    checkout = gateway.start_checkout(creds, make_request(registration_id="reg-0002"))
    assert len(stripe_server.products) == len(stripe_server.prices) == 1
    assert stripe_server.sessions[checkout.reference]["amount_total"] == 4900


def test_same_idempotency_key_with_other_parameters_is_a_clear_refusal(
    gateway: PaymentGateway, stripe_server: StripeContractServer, make_request: MakeRequest
) -> None:
    creds = stripe_server.credentials()
    gateway.start_checkout(creds, make_request())
    with pytest.raises(ProviderRejectedRequest, match="other details"):
        gateway.start_checkout(creds, make_request(cancel_url="https://elsewhere.test/"))


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_outage_is_provider_unavailable_and_nothing_is_created(
    gateway: PaymentGateway,
    stripe_server: StripeContractServer,
    make_request: MakeRequest,
    status: int,
) -> None:
    stripe_server.fail_next(1, status)
    with pytest.raises(ProviderUnavailable):
        gateway.start_checkout(stripe_server.credentials(), make_request())
    assert stripe_server.sessions == {}
    assert gateway.start_checkout(stripe_server.credentials(), make_request()).url


def test_timeout_is_provider_unavailable(gateway: PaymentGateway, stripe_server: StripeContractServer) -> None:
    stripe_server.delay_next(1, SLOW, execute=False)
    with pytest.raises(ProviderUnavailable):
        gateway.validate_credentials(stripe_server.credentials())


def test_key_without_sessions_permission_fails_checkout_with_credentials_error(
    gateway: PaymentGateway, stripe_server: StripeContractServer, make_request: MakeRequest
) -> None:
    key = stripe_server.restricted_key("products", "prices")
    with pytest.raises(ProviderCredentialsInvalid, match="Checkout Sessions: Write"):
        gateway.start_checkout(stripe_server.credentials(key), make_request())


# -- webhook signatures ---------------------------------------------------------


@pytest.mark.parametrize("variant", ["tampered", "stale", "wrong_key"])
def test_bad_signatures_are_refused(
    gateway: PaymentGateway,
    stripe_server: StripeContractServer,
    make_request: MakeRequest,
    variant: str,
) -> None:
    session = stripe_server.sessions[_paid_session(gateway, stripe_server, make_request)]
    event = stripe_server.event("checkout.session.completed", session)
    headers, body = stripe_server.signed(event, variant=variant)  # type: ignore[arg-type]
    with pytest.raises(InvalidSignature):
        gateway.parse_notification(stripe_server.credentials(), headers, body)


def test_missing_header_and_future_timestamp_are_refused(
    gateway: PaymentGateway, stripe_server: StripeContractServer
) -> None:
    event = stripe_server.event("checkout.session.expired", {"id": "cs_x"})
    creds = stripe_server.credentials()
    _, body = stripe_server.signed(event)
    with pytest.raises(InvalidSignature):
        gateway.parse_notification(creds, {}, body)
    headers, body = stripe_server.signed(event, timestamp=int(time.time()) + 3600)
    with pytest.raises(InvalidSignature, match="tolerance"):
        gateway.parse_notification(creds, headers, body)


def test_tolerance_is_judged_against_the_injected_clock(
    gateway: PaymentGateway, stripe_server: StripeContractServer
) -> None:
    signed_at = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)
    event = stripe_server.event("customer.created", {"id": "cus_1"})
    headers, body = stripe_server.signed(event, timestamp=int(signed_at.timestamp()))
    creds = stripe_server.credentials()
    assert gateway.parse_notification(creds, headers, body, now=signed_at) == []
    later = signed_at + timedelta(seconds=301)
    with pytest.raises(InvalidSignature):
        gateway.parse_notification(creds, headers, body, now=later)


# -- notification mapping -------------------------------------------------------


def test_delivered_completed_session_maps_to_paid_with_the_amount_stripe_took(
    gateway: PaymentGateway,
    stripe_server: StripeContractServer,
    webhook_sink: WebhookSink,
    make_request: MakeRequest,
) -> None:
    reference = _paid_session(gateway, stripe_server, make_request)
    event = stripe_server.event("checkout.session.completed", stripe_server.sessions[reference])
    assert stripe_server.deliver_event(webhook_sink.url, event) == 200
    (headers, body) = webhook_sink.received[0]

    (paid,) = gateway.parse_notification(stripe_server.credentials(), headers, body)
    assert (paid.kind, paid.registration_id, paid.reference) == ("paid", "reg-0001", reference)
    assert paid.amount == Money(4900, "USD")
    assert paid.provider_event_id == f"{reference}:paid"
    assert paid.raw_type == "checkout.session.completed"


def test_async_payment_is_pending_then_paid_or_failed(
    gateway: PaymentGateway, stripe_server: StripeContractServer, make_request: MakeRequest
) -> None:
    creds = stripe_server.credentials()

    def parse(event_type: str, reference: str) -> list[str]:
        event = stripe_server.event(event_type, stripe_server.sessions[reference])
        found = gateway.parse_notification(creds, *stripe_server.signed(event))
        return [n.kind for n in found]

    ok = gateway.start_checkout(creds, make_request()).reference
    stripe_server.complete(ok, payment_status="unpaid")
    assert parse("checkout.session.completed", ok) == ["pending"]
    stripe_server.settle_async(ok, succeeded=True)
    assert parse("checkout.session.async_payment_succeeded", ok) == ["paid"]

    bad = gateway.start_checkout(creds, make_request(registration_id="reg-0002")).reference
    stripe_server.complete(bad, payment_status="unpaid")
    stripe_server.settle_async(bad, succeeded=False)
    assert parse("checkout.session.async_payment_failed", bad) == ["failed"]


def test_expired_and_declined_sessions(
    gateway: PaymentGateway, stripe_server: StripeContractServer, make_request: MakeRequest
) -> None:
    creds = stripe_server.credentials()
    reference = gateway.start_checkout(creds, make_request()).reference
    intent = stripe_server.decline(reference)
    event = stripe_server.event("payment_intent.payment_failed", intent)
    (failed,) = gateway.parse_notification(creds, *stripe_server.signed(event))
    assert (failed.kind, failed.reference, failed.amount) == ("failed", reference, None)
    assert failed.provider_event_id == event["id"]  # each declined attempt is its own fact

    event = stripe_server.event("checkout.session.expired", stripe_server.expire(reference))
    (expired,) = gateway.parse_notification(creds, *stripe_server.signed(event))
    assert (expired.kind, expired.registration_id) == ("expired", "reg-0001")


def test_partial_then_full_refund_are_two_refunds_with_their_own_amounts(
    gateway: PaymentGateway, stripe_server: StripeContractServer, make_request: MakeRequest
) -> None:
    creds = stripe_server.credentials()
    reference = _paid_session(gateway, stripe_server, make_request)
    first = stripe_server.refund(reference, 1000)
    rest = stripe_server.refund(reference)
    found = [
        gateway.parse_notification(creds, *stripe_server.signed(stripe_server.event(t, r)))
        for t, r in (("refund.created", first), ("refund.updated", rest))
    ]
    assert [(n.kind, n.amount, n.reference) for (n,) in found] == [
        ("refunded", Money(1000, "USD"), reference),
        ("refunded", Money(3900, "USD"), reference),
    ]
    assert found[0][0].provider_event_id == f"refund:{first['id']}"


def test_charge_refunded_uses_its_refund_list_and_is_ignored_without_one(
    gateway: PaymentGateway, stripe_server: StripeContractServer, make_request: MakeRequest
) -> None:
    creds = stripe_server.credentials()
    reference = _paid_session(gateway, stripe_server, make_request)
    refund = stripe_server.refund(reference, 900)
    charge = next(iter(stripe_server.charges.values()))
    with_list = {**charge, "refunds": {"object": "list", "data": [refund]}}
    event = stripe_server.event("charge.refunded", with_list, {"amount_refunded": 0})
    (found,) = gateway.parse_notification(creds, *stripe_server.signed(event))
    assert (found.amount, found.provider_event_id) == (Money(900, "USD"), f"refund:{refund['id']}")
    bare = stripe_server.event("charge.refunded", charge)
    assert gateway.parse_notification(creds, *stripe_server.signed(bare)) == []


def test_pending_refunds_foreign_objects_and_other_events_are_ignored(
    gateway: PaymentGateway, stripe_server: StripeContractServer, make_request: MakeRequest
) -> None:
    creds = stripe_server.credentials()
    reference = _paid_session(gateway, stripe_server, make_request)
    pending = stripe_server.refund(reference, 500, status="pending")
    foreign = {
        "id": "cs_foreign",
        "status": "complete",
        "payment_status": "paid",
        "amount_total": 100,
        "currency": "usd",
        "metadata": {},
    }
    for event in (
        stripe_server.event("refund.created", pending),
        stripe_server.event("checkout.session.completed", foreign),
        stripe_server.event("customer.subscription.created", {"id": "sub_1"}),
    ):
        assert gateway.parse_notification(creds, *stripe_server.signed(event)) == []


# -- status polling / return from Stripe ---------------------------------------


def test_fetch_status_follows_the_session_and_matches_webhook_fact_ids(
    gateway: PaymentGateway, stripe_server: StripeContractServer, make_request: MakeRequest
) -> None:
    creds = stripe_server.credentials()
    reference = gateway.start_checkout(creds, make_request()).reference
    assert gateway.fetch_status(creds, reference) is None
    stripe_server.complete(reference)
    polled = gateway.fetch_status(creds, reference)
    event = stripe_server.event("checkout.session.completed", stripe_server.sessions[reference])
    (pushed,) = gateway.parse_notification(creds, *stripe_server.signed(event))
    assert polled is not None
    assert (polled.kind, polled.amount) == ("paid", Money(4900, "USD"))
    assert polled.provider_event_id == pushed.provider_event_id


def test_fetch_status_of_an_expired_session_and_of_an_unknown_one(
    gateway: PaymentGateway, stripe_server: StripeContractServer, make_request: MakeRequest
) -> None:
    creds = stripe_server.credentials()
    reference = gateway.start_checkout(creds, make_request()).reference
    stripe_server.expire(reference)
    expired = gateway.fetch_status(creds, reference)
    assert expired is not None
    assert expired.kind == "expired"
    with pytest.raises(ProviderRejectedRequest, match=r"No such checkout\.session"):
        gateway.fetch_status(creds, "cs_unknown")
