"""Opening the provider's hosted checkout for a registration (R1-R3), never
half-recorded.

The sequence, and why each step is where it is:

1. The registration is already recorded by
   ``LedgerService.register_participant``, holding its seat only for the
   short opening window (R9, R20); a registration whose window lapsed (a
   retry after an outage) takes a seat again before the provider is called.
2. The gateway opens the checkout.  Its provider-side keys derive from the
   registration id (Stripe ``Idempotency-Key``, PayPal ``PayPal-Request-Id``,
   PayU ``extOrderId``), so calling it again returns the *same* session.
3. The answer is written to ``provider_checkouts`` at once, then
   ``CheckoutStarted`` is recorded together with the seat's hold for the
   checkout (``LedgerService.start_checkout``, R20).  A crash between 2 and 3
   is healed by the provider's idempotency; a crash between the row and the
   event is healed from the row without calling the provider again.

A provider failure at step 2 gives the seat back at once (nobody holds a seat
without an open checkout, R20) and raises :class:`CheckoutNotStarted` (503)
on an outage: the registration stays ``awaiting_payment`` and a retry -- the
same ``Idempotency-Key`` on the registration POST, or
``POST /v1/registrations/{id}/checkout`` -- continues from step 2.

Credentials are decrypted just before each provider call and dropped after it;
nothing here logs them.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from ledger.domain.registration import Registration
from ledger.errors import InvalidState, LedgerError, ProviderUnavailable
from ledger.provider_access import ProviderAccess
from ledger.providers import inbox
from ledger.providers.base import CheckoutRequest
from ledger.providers.payu_gateway import PayuPaymentLinkLost
from ledger.providers.registry import GATEWAY_PROVIDERS, describe
from ledger.service import OPENING_HOLD, LedgerService

log = logging.getLogger(__name__)

#: How far a checkout's deadline moves when it is opened late (after an
#: outage): deadlines fall on this grid from the registration's time, so every
#: retry within one step asks the provider for the same checkout.
DEADLINE_STEP = timedelta(minutes=2)

#: Failure reasons after which a checkout can no longer be paid: a retry would
#: only find the same dead session (every provider replays it by our ids).
CLOSED_REASONS = Registration.CHECKOUT_CLOSED_REASONS


class CheckoutNotStarted(ProviderUnavailable):
    """The provider was unreachable: the registration is kept and retryable.

    ``extensions`` names the registration and the retry endpoint so that a
    client without an ``Idempotency-Key`` can still continue.
    """

    def __init__(self, registration_id: str, cause: ProviderUnavailable) -> None:
        retry = f"/v1/registrations/{registration_id}/checkout"
        super().__init__(
            f"{cause.detail}. Registration {registration_id} is kept (a seat is held again once "
            f"its checkout opens); retry with POST {retry} or the same Idempotency-Key"
        )
        self.registration_id = registration_id
        self.extensions = {"registration_id": registration_id, "retry": retry}


class CheckoutStarter:
    """Opens (or finds again) the provider checkout of one registration."""

    def __init__(
        self, *, service: LedgerService, access: ProviderAccess, public_url: str,
        poll_without_webhook: timedelta = timedelta(seconds=30),
    ) -> None:
        """``poll_without_webhook``: how often the reconciler asks the provider
        about a checkout of a connection that receives no webhooks (R1, a
        Stripe key alone) -- the bound on how late such a payment is booked
        when the participant does not come back to the return page."""
        self.service = service
        self.access = access
        self.db = access.db
        self.public_url = public_url.rstrip("/")
        self.poll_without_webhook = poll_without_webhook

    def start(self, registration: Registration) -> tuple[Registration, dict[str, Any]]:
        """Open (or find again) the checkout and record ``CheckoutStarted``.

        Safe to call any number of times for one registration: it returns the
        same session every time.  Raises ``CheckoutNotStarted`` (503) on an
        outage, ``PayuPaymentLinkLost`` (409) when PayU has an order whose
        link never reached us, ``InvalidState`` (409) when the registration is
        no longer waiting for a payment or its checkout is dead.
        """
        rid = str(registration.id)
        if registration.provider not in GATEWAY_PROVIDERS:
            raise InvalidState(f"a {registration.provider} registration is paid outside any provider checkout")
        if registration.status != "awaiting_payment":
            raise InvalidState(f"a {registration.status} registration needs no checkout")
        row = inbox.find_checkout(self.db, rid)
        if row is None and registration.checkout:
            # Recorded by an earlier version or another path: adopt it.
            row = self._adopt(registration)
        if row is not None:
            self._refuse_dead(registration, row.reference)
        else:
            row = self._open_at_provider(registration)
        if not row.url:
            raise PayuPaymentLinkLost(row.reference)
        if not registration.checkout or registration.checkout.get("reference") != row.reference:
            registration = self.service.start_checkout(
                rid, provider=row.provider, url=row.url, reference=row.reference, until=row.expires_at
            )
        return registration, {"provider": row.provider, "url": row.url}

    def urls(self, provider: str, connection_id: str, registration_id: str) -> tuple[str, str, str]:
        """(success, cancel, notify) URLs under ``LEDGER_PUBLIC_URL``.

        Deterministic per registration on purpose: Stripe replays a session
        only for identical parameters.  Stripe fills ``{CHECKOUT_SESSION_ID}``
        and PayPal appends ``token=<order id>``; both are fallbacks for the
        return page when the crash window left us without a reference.
        """
        base = f"{self.public_url}/v1/webhooks/{provider}/{quote(connection_id, safe='')}"
        query = f"registration_id={quote(registration_id, safe='')}"
        success = f"{base}/return?{query}"
        if provider == "stripe":
            success += "&session_id={CHECKOUT_SESSION_ID}"
        return success, f"{base}/cancel?{query}", base

    # -- steps ----------------------------------------------------------------

    def _open_at_provider(self, registration: Registration) -> inbox.CheckoutRow:
        rid = str(registration.id)
        paid_event = self.service.event(registration.event_id)
        if not paid_event.connection_id:
            raise InvalidState("the event has no provider connection")
        connection = self.access.connection(paid_event.connection_id)
        now = self.service.clock()
        if not paid_event.holds_seat(rid, now):
            self.service.hold_for_checkout(rid)  # R20: the opening window lapsed
        # The registration's first hold is its opening window from the
        # moment it registered (ledger clock): the anchor of every deadline.
        first = self.service.event(registration.event_id).first_held.get(rid)
        registered_at = datetime.fromisoformat(first) - OPENING_HOLD if first else now
        expires_at = self.checkout_deadline(connection.provider, registered_at, now)
        success, cancel, notify = self.urls(connection.provider, connection.id, rid)
        request = CheckoutRequest(
            registration_id=rid,
            event_id=str(paid_event.id),
            event_title=paid_event.title,
            price=registration.price,
            participant_name=registration.name or "",  # erased (R24): nothing to pass on
            participant_email=registration.email or "",
            success_url=success,
            cancel_url=cancel,
            notify_url=notify,
            expires_at=expires_at,
            opened_at=now,
        )
        gateway = self.access.gateway(connection.provider)
        creds = self.access.credentials(connection.id)
        polled_only = describe(connection.provider).confirms_by_polling_only(creds)
        steady_poll = self.poll_without_webhook if polled_only else None
        try:
            checkout = gateway.start_checkout(creds, request)
            url, reference = checkout.url, checkout.reference
        except PayuPaymentLinkLost as lost:
            # Keep the order so its notifications and the reconciler can still
            # settle (release the seat of) this registration.
            url, reference = "", lost.reference
        except ProviderUnavailable as exc:
            self._release(rid)
            raise CheckoutNotStarted(rid, exc) from exc
        except LedgerError:
            self._release(rid)
            raise
        row = inbox.CheckoutRow(
            rid, connection.provider, connection.id, connection.organizer_id, reference, url, expires_at
        )
        return inbox.save_checkout(self.db, row, steady_poll=steady_poll)

    def checkout_deadline(self, provider: str, registered_at: datetime, now: datetime) -> datetime:
        """When the checkout stops taking money, and its seat stops being
        held (R20): ``seat_hold`` (within the provider's bounds -- Stripe: at
        least 30 minutes) after the registration, moved on in whole
        ``DEADLINE_STEP`` s when the checkout is (re)opened later, so that at
        least ``lifetime - DEADLINE_STEP`` is left.  Fixed for a given
        moment, never drifting with each call: a retry after a lost answer
        sends the very same parameters (Stripe replays only those).
        """
        lifetime: timedelta = self.service.seat_hold
        bounds = describe(provider).checkout_lifetime
        if bounds is not None:
            lifetime = min(max(lifetime, bounds[0]), bounds[1])
        late = now - registered_at - DEADLINE_STEP
        steps = max(0, -(-late // DEADLINE_STEP))  # ceiling division of timedeltas
        return registered_at + lifetime + steps * DEADLINE_STEP

    def _release(self, registration_id: str) -> None:
        """No checkout opened: give the seat back (R20).  Best effort -- if it
        cannot be written now, the opening hold lapses by itself."""
        try:
            self.service.release_hold(registration_id, "checkout_not_started")
        except LedgerError as exc:
            log.warning("seat of %s not released (%s); its opening hold lapses", registration_id, exc.code)

    def _adopt(self, registration: Registration) -> inbox.CheckoutRow:
        assert registration.checkout is not None
        paid_event = self.service.event(registration.event_id)
        row = inbox.CheckoutRow(
            str(registration.id),
            registration.checkout["provider"],
            paid_event.connection_id or "",
            registration.organizer_id,
            registration.checkout["reference"],
            registration.checkout["url"],
        )
        return inbox.save_checkout(self.db, row)

    @staticmethod
    def _refuse_dead(registration: Registration, reference: str) -> None:
        for failure in registration.failures:
            if failure["reference"] == reference and failure["reason"] in CLOSED_REASONS:
                raise InvalidState(f"the checkout of this registration has {failure['reason']}; register again to pay")
