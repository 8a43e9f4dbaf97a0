"""Pytest fixtures for the provider contract servers.

Loaded from the root conftest with ``pytest_plugins = ["tests.contracts.fixtures"]``.
Each fixture starts a fresh server on a free loopback port (state never leaks
between tests) and stops it afterwards.  Every server object offers
``.base_url``, ``.credentials()``, the request log ``.requests``, failure
injection ``.fail_next(n, status)`` / ``.delay_next(n, seconds)``, its
provider's state (``.sessions``, ``.orders`` ...) and "dashboard" methods that
change it and sign webhooks (``.signed(...)``, ``.deliver_event(...)``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.contracts.http_stub import WebhookSink
from tests.contracts.paypal_contract import PaypalContractServer
from tests.contracts.payu_contract import PayuContractServer
from tests.contracts.stripe_contract import StripeContractServer


@pytest.fixture
def stripe_server() -> Iterator[StripeContractServer]:
    server = StripeContractServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def payu_server() -> Iterator[PayuContractServer]:
    server = PayuContractServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def paypal_server() -> Iterator[PaypalContractServer]:
    server = PaypalContractServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def webhook_sink() -> Iterator[WebhookSink]:
    """A stand-in webhook endpoint recording what the servers deliver."""
    sink = WebhookSink()
    sink.start()
    yield sink
    sink.stop()
