"""Gateways against the local provider contract servers (real HTTP, loopback).

The server fixtures come from ``tests.contracts.fixtures``; they are imported
here so this folder also runs on its own (a non-root conftest may not declare
``pytest_plugins``).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ledger.money import Money
from ledger.providers.base import CheckoutRequest
from tests.contracts.fixtures import (  # noqa: F401  (fixtures, used by name)
    paypal_server,
    payu_server,
    stripe_server,
    webhook_sink,
)

MakeRequest = Callable[..., CheckoutRequest]


@pytest.fixture
def make_request() -> MakeRequest:
    """A CheckoutRequest factory; keyword arguments override the defaults."""

    def make(**overrides: object) -> CheckoutRequest:
        fields: dict[str, object] = {
            "registration_id": "reg-0001",
            "event_id": "evt-0001",
            "event_title": "Pricing webinars that sell",
            "price": Money(4900, "USD"),
            "participant_name": "Ada Lovelace",
            "participant_email": "ada@example.test",
            "success_url": "https://ledger.test/return?session={CHECKOUT_SESSION_ID}",
            "cancel_url": "https://ledger.test/cancelled",
            "notify_url": "https://ledger.test/v1/webhooks/provider/conn-1",
        }
        fields.update(overrides)
        return CheckoutRequest(**fields)  # type: ignore[arg-type]

    return make
