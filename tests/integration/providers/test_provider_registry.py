"""The provider registry: which gateway, which fields, what may be shown (R1-R3)."""

from __future__ import annotations

import pytest

from ledger.errors import ValidationFailed
from ledger.providers.base import CapturingGateway, PaymentGateway, ProviderNotSupported
from ledger.providers.registry import (
    ProviderEndpoints,
    describe,
    gateway_for,
    mask,
    require_fields,
    required_fields,
)


@pytest.mark.parametrize("provider", ["stripe", "payu", "paypal"])
def test_every_provider_has_a_gateway_honouring_the_protocol(provider: str) -> None:
    gateway = gateway_for(provider, ProviderEndpoints())
    assert isinstance(gateway, PaymentGateway)
    assert gateway.provider == provider
    # PayPal captures approved orders; PayU confirms orders awaiting confirmation (issue 18).
    assert isinstance(gateway, CapturingGateway) == (provider in ("paypal", "payu"))
    assert describe(provider).captures == (provider in ("paypal", "payu"))


def test_manual_and_unknown_providers_have_no_gateway() -> None:
    for provider in ("manual", "bitcoin"):
        with pytest.raises(ProviderNotSupported):
            gateway_for(provider, ProviderEndpoints())
        with pytest.raises(ProviderNotSupported):
            required_fields(provider)


def test_required_fields_are_the_api_contract() -> None:
    assert required_fields("stripe") == ("api_key", "webhook_secret")
    assert required_fields("payu") == ("shop_id", "pos_id", "client_id", "client_secret", "second_key")
    # R2: platform mode (merchant_id or email) or the organizer's own REST app.
    assert required_fields("paypal") == ("merchant_id", "email", "client_id", "client_secret", "webhook_id")


def test_require_fields_names_each_blank_field() -> None:
    with pytest.raises(ValidationFailed) as caught:
        require_fields("payu", {"shop_id": "A", "pos_id": "  ", "client_id": "c", "client_secret": "s"})
    assert caught.value.errors() == {
        "pos_id": ["is required"],
        "second_key": ["is required"],
    }


def test_mask_shows_prefix_and_last_four_of_secrets_only() -> None:
    shown = mask(
        "stripe",
        {
            "api_key": "rk_live_51Habcdefghijklmnop1234",
            "webhook_secret": "whsec_abcdefghijklmnopqrstuvwxyz9876",
        },
    )
    assert shown == {"api_key": "rk_live_…1234", "webhook_secret": "whsec_…9876"}
    payu = mask(
        "payu",
        {
            "shop_id": "S1",
            "pos_id": "412345",
            "client_id": "412345",
            "client_secret": "short",
            "second_key": "0123456789abcdef0123456789abcdef",
            "extra": "never echoed",
        },
    )
    assert payu == {
        "shop_id": "S1",
        "pos_id": "412345",
        "client_id": "412345",
        "client_secret": "…",
        "second_key": "…cdef",
    }


def test_endpoints_default_to_production_and_read_the_environment() -> None:
    assert ProviderEndpoints().stripe_api_base == "https://api.stripe.com"
    assert ProviderEndpoints().payu_api_base == "https://secure.payu.com"
    assert ProviderEndpoints().paypal_api_base == "https://api-m.paypal.com"
    env = {
        "LEDGER_STRIPE_API_BASE": "http://127.0.0.1:1",
        "LEDGER_PAYU_API_BASE": "",
        "LEDGER_PROVIDER_TIMEOUT_SECONDS": "2.5",
    }
    endpoints = ProviderEndpoints.from_env(env)
    assert endpoints.stripe_api_base == "http://127.0.0.1:1"
    assert endpoints.payu_api_base == "https://secure.payu.com"
    assert endpoints.timeout_seconds == 2.5
