"""Connecting Stripe, PayU and PayPal (R1-R4): credentials checked at the
provider, stored encrypted, never echoed; wiring from configuration."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from entrypoints.bootstrap import bootstrap, endpoints_for
from ledger.container import Ledger
from ledger.money import Money
from ledger.providers.base import CheckoutRequest
from tests.contracts.stripe_contract import StripeContractServer
from tests.e2e import test_providers_support as kit
from tests.e2e.test_providers_support import Servers, connect
from tests.support.postgres import TestServer
from tests.support.settings import make_settings

# The module's own ledger, app and provider wiring (see test_providers_support).
app = kit.app
provider_ledger = kit.provider_ledger
servers = kit.servers
tokens = kit.tokens


def _creds(servers: Servers, provider: str) -> dict[str, str]:
    return dict(getattr(servers, provider).credentials())


@pytest.mark.parametrize("provider", ["stripe", "payu", "paypal"])
def test_valid_credentials_connect_and_secrets_are_never_echoed(
    client: FlaskClient, make_org: Any, servers: Servers, provider_ledger: Ledger, provider: str
) -> None:
    org = make_org(country="PL" if provider == "payu" else "US", providers=())
    creds = _creds(servers, provider)
    r = connect(client, org, provider, creds)
    assert r.status_code == 201, r.get_json()
    listed = client.get(f"/v1/organizers/{org.id}/providers", headers=org.headers)
    secret_fields = {
        "stripe": ("api_key", "webhook_secret"),
        "payu": ("client_secret", "second_key"),
        "paypal": ("client_secret",),
    }[provider]
    for text in (r.get_data(as_text=True), listed.get_data(as_text=True)):
        for name in secret_fields:
            assert creds[name] not in text
    with provider_ledger.db.transaction() as conn:
        sealed = conn.execute(
            "SELECT ciphertext FROM provider_secrets WHERE connection_id = %s", (r.get_json()["id"],)
        ).fetchone()
    assert sealed is not None and creds[secret_fields[0]].encode() not in bytes(sealed[0])


def test_a_fully_permitted_restricted_stripe_key_connects(client: FlaskClient, make_org: Any, servers: Servers) -> None:
    org = make_org(providers=())
    key = servers.stripe.restricted_key("products", "prices", "checkout_sessions")
    r = connect(client, org, "stripe", {"api_key": key, "webhook_secret": servers.stripe.webhook_secret})
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["masked"]["api_key"].startswith("rk_test_")
    assert servers.stripe.products == servers.stripe.prices == servers.stripe.sessions == {}


@pytest.mark.parametrize(
    ("provider", "change", "field"),
    [
        ("stripe", {"api_key": "sk_test_wrongwrongwrongwrong"}, "api_key"),
        ("stripe", {"webhook_secret": "not-a-signing-secret"}, "webhook_secret"),
        ("payu", {"client_secret": "0" * 32}, "client_secret"),
        ("payu", {"second_key": "short"}, "second_key"),
        ("paypal", {"client_secret": "EWrong"}, "client_secret"),
        ("paypal", {"webhook_id": "WH-UNKNOWN"}, "webhook_id"),
    ],
)
def test_wrong_credentials_are_422_provider_credentials_invalid(
    client: FlaskClient, make_org: Any, servers: Servers, provider: str, change: dict[str, str], field: str
) -> None:
    org = make_org(country="PL" if provider == "payu" else "US", providers=())
    r = connect(client, org, provider, {**_creds(servers, provider), **change})
    problem = r.get_json()
    assert (r.status_code, problem["code"]) == (422, "provider_credentials_invalid"), problem
    assert r.mimetype == "application/problem+json" and field in problem["errors"]
    assert change[field] not in r.get_data(as_text=True)
    listed = client.get(f"/v1/organizers/{org.id}/providers", headers=org.headers).get_json()
    assert listed["items"] == []


@pytest.mark.parametrize(
    ("granted", "missing"),
    [
        (("prices", "checkout_sessions"), "Products: Write"),
        (("products", "checkout_sessions"), "Prices: Write"),
        (("products", "prices"), "Checkout Sessions: Write"),
    ],
)
def test_restricted_key_missing_a_permission_is_named(
    client: FlaskClient, make_org: Any, servers: Servers, granted: tuple[str, ...], missing: str
) -> None:
    org = make_org(providers=())
    key = servers.stripe.restricted_key(*granted)
    r = connect(client, org, "stripe", {"api_key": key, "webhook_secret": servers.stripe.webhook_secret})
    assert (r.status_code, r.get_json()["code"]) == (422, "provider_credentials_invalid")
    assert missing in r.get_json()["detail"]


def test_provider_outage_while_connecting_is_503_and_connects_nothing(
    client: FlaskClient, make_org: Any, servers: Servers
) -> None:
    org = make_org(providers=())
    servers.paypal.fail_next(1, 500)
    r = connect(client, org, "paypal", _creds(servers, "paypal"))
    assert (r.status_code, r.get_json()["code"]) == (503, "provider_unavailable")
    assert client.get(f"/v1/organizers/{org.id}/providers", headers=org.headers).get_json()["items"] == []
    assert connect(client, org, "paypal", _creds(servers, "paypal")).status_code == 201


def test_endpoints_come_from_settings_built_from_the_environment(
    pg_server: TestServer, tmp_path: Path, stripe_server: StripeContractServer
) -> None:
    """The production path: ``bootstrap(settings)`` with no explicit
    endpoints takes them from the settings."""
    settings = make_settings(
        tmp_path, LEDGER_STRIPE_API_BASE=stripe_server.base_url, LEDGER_PUBLIC_URL="https://pay.example.test/"
    )
    ledger = bootstrap(settings, url=pg_server.new_database("wiring"), pool_size=2)
    try:
        assert endpoints_for(settings, {"LEDGER_PROVIDER_TIMEOUT_SECONDS": "2.5"}).timeout_seconds == 2.5
        ledger.providers.validate_credentials("stripe", stripe_server.credentials())
        starter = ledger.checkout
        success, cancel, notify = starter.urls("stripe", "conn-1", "reg-1")
        assert notify == "https://pay.example.test/v1/webhooks/stripe/conn-1"
        assert cancel == "https://pay.example.test/v1/webhooks/stripe/conn-1/cancel?registration_id=reg-1"
        gateway = ledger.providers.gateway("stripe")
        request = CheckoutRequest(
            "reg-1", "evt-1", "T", Money(100, "USD"), "A", "a@example.test", success, cancel, notify
        )
        assert gateway.start_checkout(stripe_server.credentials(), request).url.startswith(stripe_server.base_url)
    finally:
        ledger.close()


def test_webhook_routes_are_in_the_openapi_document(client: FlaskClient, servers: Servers) -> None:
    spec = json.loads(client.get("/openapi.json").get_data())
    for path in (
        "/v1/webhooks/{provider}/{connection_id}",
        "/v1/webhooks/{provider}/{connection_id}/return",
        "/v1/registrations/{registration_id}/checkout",
    ):
        assert path in spec["paths"], path
