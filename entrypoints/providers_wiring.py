"""Wire the payment providers (R1-R3) into a bootstrapped ledger.

Called once from the composition root (``entrypoints.bootstrap``) and by
tests, which pass ``endpoints`` pointing at the local contract servers.
Fills ``ledger.extras``:

* ``validate_credentials(provider, creds)`` -- used by
  ``POST /v1/organizers/{org}/providers``;
* ``start_checkout(registration) -> (registration, checkout)`` -- used by
  ``POST /v1/events/{id}/registrations``;
* ``provider_access``, ``payment_intake``, ``checkout_starter`` -- used by the
  webhook blueprint and the reconcile worker.

Calling it again replaces the wiring (tests swap contract servers).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ledger.checkout import CheckoutStarter, ProviderAccess
from ledger.config import Settings
from ledger.payment_intake import PaymentIntake
from ledger.providers.registry import ProviderEndpoints

if TYPE_CHECKING:
    from entrypoints.bootstrap import Ledger


def endpoints_for(settings: Settings, env: Mapping[str, str] | None = None) -> ProviderEndpoints:
    """``ProviderEndpoints.from_env(os.environ)``, except that the API bases
    the settings were built with win: in production both come from the same
    environment, and tests build settings with ``make_settings(...,
    LEDGER_STRIPE_API_BASE=...)`` without touching ``os.environ``."""
    merged = dict(os.environ if env is None else env)
    merged.update(
        {
            "LEDGER_STRIPE_API_BASE": settings.stripe_api_base,
            "LEDGER_PAYU_API_BASE": settings.payu_api_base,
            "LEDGER_PAYPAL_API_BASE": settings.paypal_api_base,
        }
    )
    return ProviderEndpoints.from_env(merged)


def install(ledger: Ledger, *, endpoints: ProviderEndpoints | None = None) -> None:
    access = ProviderAccess(
        db=ledger.db,
        secret_box=ledger.secret_box,
        service=ledger.service,
        endpoints=endpoints or endpoints_for(ledger.settings),
    )
    intake = PaymentIntake(service=ledger.service, access=access)
    starter = CheckoutStarter(service=ledger.service, access=access, public_url=ledger.settings.public_url)
    ledger.extras.update(
        {
            "provider_access": access,
            "payment_intake": intake,
            "checkout_starter": starter,
            "validate_credentials": access.validate_credentials,
            "start_checkout": starter.start,
        }
    )
