"""The composition root: settings → database → event store → services.

Everything with a connection, a thread or a key is built here and passed in,
so the CLI, the API, the workers and the tests build the very same object
graph (:class:`ledger.container.Ledger`).  Nothing imports this module but
the entry points and the tests.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta

from ledger.application import LedgerStore
from ledger.checkout import CheckoutStarter
from ledger.clock import Clock, utc_now
from ledger.config import Settings
from ledger.container import Ledger
from ledger.database import Database, embedded_server_url, eventsourcing_env
from ledger.erasure import Erasures
from ledger.migrations import check as check_schema
from ledger.payment_intake import PaymentIntake
from ledger.personal_data import Keyring
from ledger.provider_access import ProviderAccess
from ledger.provider_connections import ProviderConnector
from ledger.provider_notifications import NotificationReceiver
from ledger.providers.endpoints import ProviderEndpoints
from ledger.registration_desk import RegistrationDesk
from ledger.registration_emails import RegistrationEmails
from ledger.secret_box import SecretBox
from ledger.service import LedgerService

__all__ = ["Ledger", "bootstrap", "database_url", "endpoints_for"]


def database_url(settings: Settings) -> str:
    return settings.database_url or embedded_server_url(settings.data_dir)


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
            "LEDGER_PAYPAL_CLIENT_ID": settings.paypal_client_id or "",
            "LEDGER_PAYPAL_CLIENT_SECRET": settings.paypal_client_secret or "",
            "LEDGER_PAYPAL_WEBHOOK_ID": settings.paypal_webhook_id or "",
        }
    )
    return ProviderEndpoints.from_env(merged)


def bootstrap(
    settings: Settings | None = None, *, clock: Clock = utc_now, pool_size: int = 10,
    url: str | None = None, endpoints: ProviderEndpoints | None = None,
) -> Ledger:
    """Wire a ledger to the database at ``url`` (or the settings' one).

    Runs no DDL: the schema must already be at this code's version
    (``ledger.migrations``), else :class:`ledger.migrations.SchemaBehind` says
    to run ``ledger migrate``.  Only ``ledger run`` and ``ledger migrate``
    migrate; tests migrate their databases when they create them."""
    settings = settings or Settings.from_env()
    url = url or database_url(settings)
    check_schema(url)
    store = LedgerStore(env=eventsourcing_env(url, pool_size=pool_size))
    db = Database(url, max_size=pool_size)
    secret_box = SecretBox(settings.secret_key)
    store.use_keyring(Keyring(secret_box, db.transaction))  # R24: personal data sealed per registration
    service = LedgerService(
        store, clock=clock, seat_hold=timedelta(seconds=settings.seat_hold_seconds),
        manual_hold=timedelta(seconds=settings.manual_hold_seconds),
        emails=RegistrationEmails(db, settings.secret_key),
    )
    providers = ProviderAccess(
        db=db, secret_box=secret_box, service=service, endpoints=endpoints or endpoints_for(settings)
    )
    intake = PaymentIntake(service=service, access=providers)
    checkout = CheckoutStarter(
        service=service, access=providers, public_url=settings.public_url,
        poll_without_webhook=timedelta(seconds=settings.poll_without_webhook_seconds),
    )
    return Ledger(
        settings=settings, database_url=url, db=db, store=store, service=service,
        secret_box=secret_box, clock=clock, providers=providers,
        connector=ProviderConnector(service=service, providers=providers, public_url=settings.public_url),
        registrations=RegistrationDesk(service=service, checkout=checkout),
        checkout=checkout, intake=intake,
        erasures=Erasures(service=service, store=store, transaction=db.transaction, clock=clock),
        notifications=NotificationReceiver(
            service=service, providers=providers, intake=intake,
            status_checks_per_minute=settings.return_checks_per_minute,
        ),
    )
