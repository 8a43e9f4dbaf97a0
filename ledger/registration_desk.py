"""Use case: a participant registers for a paid event and gets where to pay.

Two steps, each safe to repeat: the registration is recorded first
(``LedgerService.register_participant``, idempotent by the id derived from the
request) holding its seat only for the short window in which its checkout is
opened (R9, R20), then the provider checkout is opened
(:class:`~ledger.checkout.CheckoutStarter`, idempotent by the registration id
at the provider), which holds the seat for the checkout.  A provider outage
between the two gives the seat back and leaves a registration that
``continue_checkout`` -- or the same request again -- carries on.
Manual (offline) events have no checkout: the organizer records the payment,
and the registration holds its seat for the configured offline hold
(``LEDGER_MANUAL_HOLD_SECONDS``).

Both public steps are limited per client (``api/rate_limits.py``), so one
client cannot hold many seats by registering without paying.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from ledger.checkout import CheckoutStarter
from ledger.domain.registration import Registration
from ledger.providers.registry import describe
from ledger.randomness import random_uuid
from ledger.service import LedgerService


class RegistrationDesk:
    def __init__(self, *, service: LedgerService, checkout: CheckoutStarter) -> None:
        self.service = service
        self.checkout = checkout

    def register(
        self, event_id: str, *, name: str, email: str, fields: Mapping[str, str],
        language: str | None = None, new_id: UUID | None = None,
    ) -> tuple[Registration, dict[str, Any], bool]:
        """(registration, ``{"provider", "url"}``, created); ``url`` is
        ``None`` when the event is paid offline or nothing is left to pay.

        ``created`` is false when the e-mail (trimmed, any case) already has a
        registration on this event that still stands: that one is answered,
        with its checkout while it is unpaid, and nothing new is recorded --
        so one person can never be charged twice for one event."""
        # A derived id (from an Idempotency-Key) is looked up first: a retry
        # finds what the first run created.  A fresh random one cannot exist
        # yet, so it is not looked up (two reads saved per registration).
        uid = new_id or random_uuid()
        registration = self.service.register_participant(
            event_id, name=name, email=email, fields=fields, language=language, new_id=new_id,
            fresh_id=None if new_id is not None else uid,
        )
        created = registration.id == uid
        no_checkout = {"provider": registration.provider, "url": None}
        if not describe(registration.provider).has_checkout:
            return registration, no_checkout, created
        if not created and registration.status != "awaiting_payment":
            return registration, no_checkout, created
        registration, checkout = self.checkout.start(registration)
        return registration, checkout, created

    def continue_checkout(self, registration_id: str) -> tuple[Registration, dict[str, Any]]:
        """The same provider session every time; 503 while the provider is down."""
        return self.checkout.start(self.service.registration(registration_id))
