"""Fixtures and helpers for ``tests/e2e/test_providers_*.py`` (no tests here).

Each provider test module gets a ledger on a database of its own, an app on
it, and -- per test -- fresh contract servers wired in with
``ledger.providers.point_at``.  A module binds ``app = kit.app``,
``tokens = kit.tokens`` (and ``provider_ledger``, ``servers``) to override
the session-wide ``app``/``tokens`` of ``tests/e2e/conftest.py`` for itself
only, so provider wiring never leaks into other test modules.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from api.app import create_app
from entrypoints.bootstrap import bootstrap
from ledger.container import Ledger
from ledger.providers.registry import ProviderEndpoints
from tests.contracts.paypal_contract import PaypalContractServer
from tests.contracts.payu_contract import PayuContractServer
from tests.contracts.stripe_contract import StripeContractServer
from tests.support.api_client import Org, Tokens
from tests.support.postgres import TestServer
from tests.support.settings import make_settings

PUBLIC_URL = "http://ledger.test"
TIMEOUT = 1.0  # seconds per provider call; injected delays are longer
SLOW = 1.6
#: Numbers the default participants: one registration per e-mail and event.
_PARTICIPANTS = itertools.count(1)


@pytest.fixture(scope="module")
def provider_ledger(pg_server: TestServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ledger]:
    settings = make_settings(tmp_path_factory.mktemp("providers"), LEDGER_PUBLIC_URL=PUBLIC_URL)
    ledger = bootstrap(settings, url=pg_server.new_database("prov"), pool_size=10)
    yield ledger
    ledger.close()


@pytest.fixture(scope="module")
def app(provider_ledger: Ledger) -> Any:
    return create_app(provider_ledger)


@pytest.fixture(scope="module")
def tokens(provider_ledger: Ledger) -> Tokens:
    return Tokens.issue(provider_ledger)


@dataclass
class Servers:
    stripe: StripeContractServer
    payu: PayuContractServer
    paypal: PaypalContractServer


@pytest.fixture
def servers(
    provider_ledger: Ledger,
    stripe_server: StripeContractServer,
    payu_server: PayuContractServer,
    paypal_server: PaypalContractServer,
) -> Servers:
    provider_ledger.providers.point_at(
        ProviderEndpoints(
            stripe_api_base=stripe_server.base_url,
            payu_api_base=payu_server.base_url,
            paypal_api_base=paypal_server.base_url,
            timeout_seconds=TIMEOUT,
        ),
    )
    return Servers(stripe_server, payu_server, paypal_server)


@dataclass
class Shop:
    """One organizer selling one event through one connected provider."""

    client: FlaskClient
    org: Org
    provider: str
    connection_id: str
    event: dict[str, Any]

    @property
    def webhook_url(self) -> str:
        return f"/v1/webhooks/{self.provider}/{self.connection_id}"

    def register(self, key: str | None = None, email: str | None = None) -> TestResponse:
        """A new participant each call (one registration per e-mail and event),
        unless ``email`` names one."""
        headers = {"Idempotency-Key": key} if key else {}
        # The same key must carry the same body (a retry): its address follows the key.
        email = email or f"ada+{zlib.crc32(key.encode()) if key else next(_PARTICIPANTS)}@example.test"
        return self.client.post(
            f"/v1/events/{self.event['id']}/registrations",
            json={"name": "Ada Lovelace", "email": email},
            headers=headers,
        )

    def registered(self) -> dict[str, Any]:
        r = self.register()
        assert r.status_code == 201, r.get_json()
        body: dict[str, Any] = r.get_json()
        return body

    def get(self, registration_id: str) -> dict[str, Any]:
        r = self.client.get(f"/v1/registrations/{registration_id}", headers=self.org.headers)
        assert r.status_code == 200, r.get_json()
        body: dict[str, Any] = r.get_json()
        return body

    def reference(self, registration_id: str) -> str:
        checkout = self.get(registration_id)["checkout"]
        assert checkout is not None
        return str(checkout["reference"])

    def webhook(self, headers: dict[str, str], body: bytes) -> TestResponse:
        return self.client.post(self.webhook_url, data=body, headers=headers)

    def back(self, registration_id: str, **params: str) -> TestResponse:
        """The participant's browser returning from the provider."""
        query = {"registration_id": registration_id, **params}
        return self.client.get(f"{self.webhook_url}/return", query_string=query)

    def event_now(self) -> dict[str, Any]:
        r = self.client.get(f"/v1/events/{self.event['id']}", headers=self.org.headers)
        body: dict[str, Any] = r.get_json()
        return body


def connect(client: FlaskClient, org: Org, provider: str, creds: dict[str, str]) -> TestResponse:
    return client.post(f"/v1/organizers/{org.id}/providers", json={"provider": provider, **creds}, headers=org.headers)


def open_shop(
    client: FlaskClient,
    make_org: Any,
    servers: Servers,
    provider: str,
    *,
    price: str = "49.00",
    currency: str | None = None,
    plan_size: int = 50,
) -> Shop:
    country = "PL" if provider == "payu" else "US"
    currency = currency or ("PLN" if provider == "payu" else "USD")
    org = make_org(country=country, plan_size=plan_size, providers=())
    creds = getattr(servers, provider).credentials()
    r = connect(client, org, provider, creds)
    assert r.status_code == 201, r.get_json()
    connection_id = str(r.get_json()["id"])
    body = {
        "title": "Pricing webinars that sell",
        "starts_at": "2037-12-01T18:00:00+01:00",
        "permanent": False,
        "price": {"amount": price, "currency": currency},
        "provider": provider,
    }
    r = client.post("/v1/events", json=body, headers=org.headers)
    assert r.status_code == 201, r.get_json()
    return Shop(client, org, provider, connection_id, r.get_json())


def inbox_rows(ledger: Ledger, connection_id: str) -> list[tuple[str, int]]:
    """(verification, deliveries) of every verified delivery kept for a
    connection, then of every refused kind counted (refused ones are only
    sampled, see ``ledger.providers.inbox``)."""
    with ledger.db.transaction() as conn:
        rows = conn.execute(
            "SELECT verification, deliveries FROM provider_inbox WHERE connection_id = %s ORDER BY id",
            (connection_id,),
        ).fetchall()
        rows += conn.execute(
            "SELECT verification, deliveries FROM provider_delivery_counts "
            "WHERE connection_id = %s AND verification <> 'verified' ORDER BY verification",
            (connection_id,),
        ).fetchall()
    return [(str(r[0]), int(r[1])) for r in rows]


def facts(ledger: Ledger, registration_id: str) -> list[tuple[str, str | None, bool]]:
    """(provider_event_id, outcome, processed) of a registration's facts."""
    with ledger.db.transaction() as conn:
        rows = conn.execute(
            "SELECT provider_event_id, outcome, processed_at IS NOT NULL FROM provider_facts "
            "WHERE registration_id = %s ORDER BY received_at",
            (registration_id,),
        ).fetchall()
    return [(str(r[0]), r[1], bool(r[2])) for r in rows]
