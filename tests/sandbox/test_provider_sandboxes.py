"""The gateways against the providers' real sandboxes (marked ``sandbox``).

Skipped unless credentials are in the environment (docs/providers.md says how
to obtain them):

* Stripe: ``STRIPE_SANDBOX_KEY`` (``sk_test_…`` or a restricted ``rk_test_…``
  with Checkout Sessions, Products and Prices write) and optionally
  ``STRIPE_SANDBOX_WEBHOOK_SECRET``, ``STRIPE_SANDBOX_KEY_WITHOUT_PRICES``
  (a restricted key lacking Prices write).
* PayU: ``PAYU_SANDBOX_POS_ID``, ``PAYU_SANDBOX_CLIENT_ID``,
  ``PAYU_SANDBOX_CLIENT_SECRET``, ``PAYU_SANDBOX_SECOND_KEY``.
* PayPal: ``PAYPAL_SANDBOX_CLIENT_ID``, ``PAYPAL_SANDBOX_CLIENT_SECRET``,
  ``PAYPAL_SANDBOX_WEBHOOK_ID``.

Run: ``.venv/bin/pytest -m sandbox tests/sandbox``.  They create real test-mode
objects (products, prices, sessions, orders) with fresh ids on every run.
What they confirm that the contract servers cannot: that the providers accept
our exact request shapes, our idempotency keys replay, and our credential
probes mean what we think (e.g. Stripe's 400-vs-403 on an empty POST).
"""

from __future__ import annotations

import os
import uuid

import pytest

from ledger.errors import ProviderCredentialsInvalid
from ledger.money import Money
from ledger.providers.base import CapturingGateway, CheckoutRequest, ProviderRejectedRequest
from ledger.providers.payu_gateway import PayuPaymentLinkLost
from ledger.providers.registry import ProviderEndpoints, gateway_for

pytestmark = pytest.mark.sandbox

ENDPOINTS = ProviderEndpoints(
    payu_api_base=os.environ.get("LEDGER_PAYU_API_BASE", "https://secure.snd.payu.com"),
    paypal_api_base=os.environ.get("LEDGER_PAYPAL_API_BASE", "https://api-m.sandbox.paypal.com"),
    timeout_seconds=20.0,
)


def need(*names: str) -> dict[str, str]:
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        pytest.skip(f"sandbox credentials not set: {', '.join(missing)}")
    return {n: os.environ[n] for n in names}


def request(price: Money) -> CheckoutRequest:
    rid = f"sandbox-{uuid.uuid4()}"
    return CheckoutRequest(
        registration_id=rid,
        event_id=f"sandbox-evt-{uuid.uuid4().hex[:12]}",
        event_title="Ledger sandbox check",
        price=price,
        participant_name="Sandbox Participant",
        participant_email="participant@example.com",
        success_url=f"https://ledger.example/v1/webhooks/x/c/return?registration_id={rid}",
        cancel_url=f"https://ledger.example/v1/webhooks/x/c/cancel?registration_id={rid}",
        notify_url="https://ledger.example/v1/webhooks/x/c",
    )


# -- Stripe ----------------------------------------------------------------------


def _stripe_creds() -> dict[str, str]:
    env = need("STRIPE_SANDBOX_KEY")
    return {
        "api_key": env["STRIPE_SANDBOX_KEY"],
        "webhook_secret": os.environ.get("STRIPE_SANDBOX_WEBHOOK_SECRET", "whsec_sandbox_placeholder"),
    }


def test_stripe_key_validates_and_a_wrong_one_does_not() -> None:
    gateway = gateway_for("stripe", ENDPOINTS)
    gateway.validate_credentials(_stripe_creds())
    with pytest.raises(ProviderCredentialsInvalid):
        gateway.validate_credentials({**_stripe_creds(), "api_key": "sk_test_" + "0" * 24})


def test_stripe_restricted_key_without_prices_is_named() -> None:
    env = need("STRIPE_SANDBOX_KEY_WITHOUT_PRICES")
    creds = {**_stripe_creds(), "api_key": env["STRIPE_SANDBOX_KEY_WITHOUT_PRICES"]}
    with pytest.raises(ProviderCredentialsInvalid, match="Prices: Write"):
        gateway_for("stripe", ENDPOINTS).validate_credentials(creds)


def test_stripe_session_is_replayed_for_the_same_registration() -> None:
    gateway = gateway_for("stripe", ENDPOINTS)
    req = request(Money(4900, "USD"))
    first = gateway.start_checkout(_stripe_creds(), req)
    assert first.url.startswith("https://checkout.stripe.com/")
    assert gateway.start_checkout(_stripe_creds(), req) == first
    assert gateway.fetch_status(_stripe_creds(), first.reference) is None  # open, unpaid


# -- PayU ------------------------------------------------------------------------


def _payu_creds() -> dict[str, str]:
    env = need("PAYU_SANDBOX_POS_ID", "PAYU_SANDBOX_CLIENT_ID", "PAYU_SANDBOX_CLIENT_SECRET", "PAYU_SANDBOX_SECOND_KEY")
    return {
        "shop_id": os.environ.get("PAYU_SANDBOX_SHOP_ID", "sandbox"),
        "pos_id": env["PAYU_SANDBOX_POS_ID"],
        "client_id": env["PAYU_SANDBOX_CLIENT_ID"],
        "client_secret": env["PAYU_SANDBOX_CLIENT_SECRET"],
        "second_key": env["PAYU_SANDBOX_SECOND_KEY"],
    }


def test_payu_credentials_and_an_order_with_its_302() -> None:
    gateway = gateway_for("payu", ENDPOINTS)
    gateway.validate_credentials(_payu_creds())
    with pytest.raises(ProviderCredentialsInvalid):
        gateway.validate_credentials({**_payu_creds(), "client_secret": "0" * 32})
    req = request(Money(1050, "PLN"))
    checkout = gateway.start_checkout(_payu_creds(), req)
    assert checkout.url.startswith("https://")
    assert gateway.fetch_status(_payu_creds(), checkout.reference) is None  # NEW
    # extOrderId is unique: a retry finds the order but PayU gives no link again.
    with pytest.raises(PayuPaymentLinkLost) as lost:
        gateway.start_checkout(_payu_creds(), req)
    assert lost.value.reference == checkout.reference


# -- PayPal ----------------------------------------------------------------------


def _paypal_creds() -> dict[str, str]:
    env = need("PAYPAL_SANDBOX_CLIENT_ID", "PAYPAL_SANDBOX_CLIENT_SECRET", "PAYPAL_SANDBOX_WEBHOOK_ID")
    return {
        "client_id": env["PAYPAL_SANDBOX_CLIENT_ID"],
        "client_secret": env["PAYPAL_SANDBOX_CLIENT_SECRET"],
        "webhook_id": env["PAYPAL_SANDBOX_WEBHOOK_ID"],
    }


def test_paypal_credentials_webhook_id_and_an_order_replayed_by_request_id() -> None:
    gateway = gateway_for("paypal", ENDPOINTS)
    gateway.validate_credentials(_paypal_creds())
    with pytest.raises(ProviderCredentialsInvalid):
        gateway.validate_credentials({**_paypal_creds(), "webhook_id": "WH-0000000000000000"})
    req = request(Money(2500, "EUR"))
    first = gateway.start_checkout(_paypal_creds(), req)
    assert "paypal.com" in first.url
    assert gateway.start_checkout(_paypal_creds(), req).reference == first.reference
    assert gateway.fetch_status(_paypal_creds(), first.reference) is None  # PAYER_ACTION_REQUIRED
    assert isinstance(gateway, CapturingGateway)
    with pytest.raises(ProviderRejectedRequest):
        gateway.capture(_paypal_creds(), first.reference)  # not approved yet
