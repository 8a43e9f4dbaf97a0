"""Use case: a provider tells us something, or a participant comes back from it.

Notifications are verified on the *raw* body with the provider's own scheme.
Every delivery is counted per connection and verification result; verified
ones are kept whole, refused ones (forged, stale) only as a bounded, truncated
sample (``ledger.providers.inbox``), so they stay visible without a flood of
them filling the database.  Only verified facts reach
:class:`~ledger.payment_intake.PaymentIntake`, which de-duplicates them, so a
provider delivering again (after our 5xx, or just because) changes nothing.

A participant's return URL is not trusted either: the checkout's status is
fetched from the provider and applied like any notification -- but at most
``status_checks_per_minute`` times per checkout per minute (counted in
PostgreSQL, so for every API process together), and not at all once the
registration no longer awaits a payment.  Return pages are public: reloading one, or a script hitting it, must
not turn into calls with the organizer's key (the pages are also limited per
client, ``api/rate_limits.py``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from ledger.domain.registration import Registration
from ledger.errors import InvalidSignature, LedgerError, NotFound, ProviderUnavailable, ValidationFailed
from ledger.payment_intake import PaymentIntake, Result
from ledger.provider_access import Connection, ProviderAccess
from ledger.providers import inbox
from ledger.providers.base import Notification, ProviderRejectedRequest
from ledger.providers.paypal_gateway import PaypalGateway
from ledger.service import LedgerService


class MalformedNotification(LedgerError):
    code = "malformed_notification"
    status = 400
    title = "The notification body is not a JSON object"


#: Provider status calls per checkout per ``STATUS_CHECK_WINDOW`` on behalf of
#: return pages: enough for a participant who comes back, goes to pay and comes
#: back again; beyond it the page answers from the ledger, and the webhook and
#: the reconciler carry on.
STATUS_CHECKS_PER_WINDOW = 3
STATUS_CHECK_WINDOW = timedelta(minutes=1)


@dataclass(frozen=True)
class Received:
    """What one delivery carried and what became of each fact in it."""

    notifications: int
    results: list[Result]


#: The "connection id" under which the platform's PayPal app receives its
#: webhooks (R2 platform mode): ``/v1/webhooks/paypal/platform``.
PLATFORM = "platform"


class NotificationReceiver:
    def __init__(
        self, *, service: LedgerService, providers: ProviderAccess, intake: PaymentIntake,
        status_checks_per_minute: int = STATUS_CHECKS_PER_WINDOW,
    ) -> None:
        self.service = service
        self.providers = providers
        self.intake = intake
        self.status_checks_per_minute = status_checks_per_minute

    def receive(self, provider: str, connection_id: str, headers: Mapping[str, str], body: bytes) -> Received:
        """Verify, keep and apply one delivery.  Raises ``InvalidSignature``
        (400), ``MalformedNotification`` (400) or ``ProviderUnavailable`` (503,
        the provider will deliver again) after keeping the delivery.

        ``paypal`` / ``platform``: a webhook of the platform's own PayPal app
        (R2 platform mode), verified with the platform's app; each fact is
        applied on the connection of the registration it names."""
        if provider == "paypal" and connection_id == PLATFORM:
            return self._receive_platform(headers, body)
        connection = self.providers.connection_of(provider, connection_id)
        db = self.providers.db

        def keep(verification: str, detail: str | None = None, event_ids: tuple[str, ...] = ()) -> int | None:
            return inbox.record_delivery(
                db, provider=provider, connection_id=connection.id, headers=dict(headers), body=body,
                verification=verification, detail=detail, event_ids=event_ids,
            )

        try:
            notifications = self.providers.gateway(provider).parse_notification(
                self.providers.credentials(connection.id), headers, body
            )
        except InvalidSignature as exc:
            keep("invalid_signature", exc.detail)
            raise
        except ProviderUnavailable as exc:
            keep("unverifiable", exc.detail)
            raise
        except ProviderRejectedRequest as exc:
            if _is_json_object(body):
                keep("unverifiable", exc.detail)
                raise
            keep("malformed", exc.detail)
            raise MalformedNotification(exc.detail) from None
        inbox_id = keep("verified", event_ids=tuple(n.provider_event_id for n in notifications))
        assert inbox_id is not None  # verified deliveries are always kept whole
        results = self.intake.receive(connection, notifications, source="webhook", inbox_id=inbox_id)
        inbox.mark_delivery_processed(db, inbox_id)
        return Received(len(notifications), results)

    def _receive_platform(self, headers: Mapping[str, str], body: bytes) -> Received:
        gateway = self.providers.gateway("paypal")
        platform = gateway.platform_app() if isinstance(gateway, PaypalGateway) else None
        if platform is None:
            raise NotFound("no PayPal platform app is configured")
        db = self.providers.db

        def keep(verification: str, detail: str | None = None, event_ids: tuple[str, ...] = ()) -> int | None:
            return inbox.record_delivery(
                db, provider="paypal", connection_id=PLATFORM, headers=dict(headers), body=body,
                verification=verification, detail=detail, event_ids=event_ids,
            )

        try:
            notifications = gateway.parse_notification(platform, headers, body)
        except InvalidSignature as exc:
            keep("invalid_signature", exc.detail)
            raise
        except ProviderUnavailable as exc:
            keep("unverifiable", exc.detail)
            raise
        inbox_id = keep("verified", event_ids=tuple(n.provider_event_id for n in notifications))
        results: list[Result] = []
        for n in notifications:
            connection = self._platform_connection_of(n)
            if connection is None:
                results.append(Result(n.provider_event_id, "unknown_registration"))
                continue
            results += self.intake.receive(connection, [n], source="webhook", inbox_id=inbox_id)
        if inbox_id is not None:
            inbox.mark_delivery_processed(db, inbox_id)
        return Received(len(notifications), results)

    def _platform_connection_of(self, n: Notification) -> Connection | None:
        """The platform-mode PayPal connection whose registration a fact names."""
        if n.registration_id is None:
            return None
        try:
            registration = self.service.registration(n.registration_id)
            connection_id = self.service.event(registration.event_id).connection_id
            connection = self.providers.connection(connection_id or "")
        except (NotFound, ValidationFailed):
            return None
        if connection.provider != "paypal" or not PaypalGateway.confirms_by_polling_only(
            self.providers.credentials(connection.id)
        ):
            return None  # an own REST app's facts come to its own connection's URL
        return connection

    def participant_returned(
        self, provider: str, connection_id: str, registration_id: str, *, url_reference: str | None = None
    ) -> Registration:
        """Ask the provider where the checkout stands and apply the answer.

        ``url_reference`` is what the provider appended to the return URL
        (Stripe's session id, PayPal's order id): used only when a crash left
        us without a reference of our own -- safe, because the fetched fact
        names its registration and is checked like any other.

        The provider is asked only while the registration awaits a payment,
        and at most ``status_checks_per_minute`` times a minute per checkout;
        otherwise the registration is answered as it stands.
        """
        connection = self.providers.connection_of(provider, connection_id)
        registration = self.service.registration(registration_id)
        if registration.organizer_id != connection.organizer_id or registration.provider != provider:
            raise NotFound(f"no registration {registration_id}")
        if registration.status != "awaiting_payment":
            return registration  # nothing left for a return to settle
        reference, ours = self._reference(registration, url_reference)
        if reference is None:
            return registration
        if not inbox.claim_status_check(
            self.providers.db, str(registration.id), reference,
            per_window=self.status_checks_per_minute, window=STATUS_CHECK_WINDOW,
        ):
            return registration  # asked enough this minute; its answers are applied already
        try:
            found = self.providers.gateway(provider).fetch_status(self.providers.credentials(connection.id), reference)
        except ProviderRejectedRequest:
            if ours:
                raise
            found = None  # a made-up id in the URL: nothing to learn, not our error
        if found is not None:
            self.intake.receive(connection, [found], source="return")
        return self.service.registration(str(registration.id))

    def _reference(self, registration: Registration, url_reference: str | None) -> tuple[str | None, bool]:
        """(reference, is it ours): our own record first."""
        row = inbox.find_checkout(self.providers.db, str(registration.id))
        if row is not None:
            return row.reference, True
        if registration.checkout:
            return registration.checkout["reference"], True
        if url_reference and "{" not in url_reference:
            return url_reference, False
        return None, False


def _is_json_object(body: bytes) -> bool:
    try:
        return isinstance(json.loads(body), dict)
    except (ValueError, UnicodeDecodeError):
        return False
