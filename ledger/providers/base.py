"""The payment-provider plug-in boundary (R1-R3).

One class per provider (Stripe, PayU, PayPal) implements :class:`PaymentGateway`
with the same life-cycle as pretix's ``BasePaymentProvider``: validate
credentials, start a checkout, verify and parse a notification, fetch a status.
The ledger core talks only to this interface; it never sees HTTP, SDK objects
or provider JSON.  Everything that crosses the boundary is a frozen dataclass
with exact :class:`~ledger.money.Money` (R8), never a float.

Credentials are passed in on every call as a plain mapping (field names fixed
by API.md) so that a gateway holds no organizer secrets between calls: the
application decrypts them just before the call and drops them after.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

from ledger.errors import LedgerError
from ledger.money import Money

#: What a notification tells the ledger.  ``pending`` means "the provider has
#: the payment in progress" (async bank transfer, PayPal approval awaiting
#: capture); it never books money.
#: The rest are the provider correcting money it had reported (issue 18):
#: ``disputed`` (a chargeback opened), ``funds_withdrawn`` / ``funds_reinstated``
#: (the disputed money left / came back to the organizer's balance),
#: ``dispute_won`` / ``dispute_lost``, ``reversed`` (PayPal took a capture back)
#: and ``refund_failed`` (a refund reported earlier never reached the payer).
#: ``authorized``: the payer's money is held by the provider until the shop
#: confirms it (PayU WAITING_FOR_CONFIRMATION): the ledger confirms
#: (``CapturingGateway.capture``) or releases it.
NotificationKind = Literal[
    "paid", "failed", "expired", "refunded", "pending", "authorized",
    "disputed", "funds_withdrawn", "funds_reinstated", "dispute_won", "dispute_lost", "reversed", "refund_failed",
]

#: Provider credentials as entered by the organizer (see each provider class's ``credential_fields``).
Credentials = Mapping[str, str]


class ProviderRejectedRequest(LedgerError):
    """The provider understood the call and refused it (4xx other than auth).

    Not an outage, so retrying the same request will not help; the detail is
    the provider's own message, which never contains a secret.
    """

    code = "provider_rejected_request"
    status = 502
    title = "The payment provider rejected the request"


class ProviderNotSupported(LedgerError):
    """A provider name with no gateway (e.g. ``manual``, which has no API)."""

    code = "provider_not_supported"
    title = "No payment gateway for this provider"


@dataclass(frozen=True)
class CheckoutRequest:
    """Everything a provider needs to open a hosted payment page for one
    registration.  ``registration_id`` is the idempotency anchor: every
    provider-side key is derived from it so a retry finds the same checkout.
    """

    registration_id: str
    event_id: str
    event_title: str
    price: Money
    participant_name: str
    participant_email: str
    success_url: str
    cancel_url: str
    notify_url: str
    #: The participant's IP address; PayU requires one (``customerIp``).  When
    #: unknown the gateway sends the loopback address, which PayU accepts.
    customer_ip: str | None = None
    #: When the checkout must stop taking money: the end of the seat's hold
    #: (R20), already within the provider's own bounds
    #: (``ProviderDescription.checkout_lifetime``).  ``opened_at`` is the
    #: ledger's "now" for providers that take a duration (PayU's
    #: ``validityTime``).  ``None``: the provider's default validity.
    expires_at: datetime | None = None
    opened_at: datetime | None = None


@dataclass(frozen=True)
class Checkout:
    """Where to send the participant, and the provider's id of the checkout.

    ``reference`` is the Stripe Checkout Session id, the PayU ``orderId`` or
    the PayPal order id: the key for :meth:`PaymentGateway.fetch_status`.
    """

    provider: str
    url: str
    reference: str


@dataclass(frozen=True)
class Notification:
    """One fact a provider reported, in ledger terms.

    ``provider_event_id`` identifies the *fact*, not the HTTP delivery, where
    a fact can reach us several ways (webhook, the participant's return,
    reconciler polling, PayPal's capture answer): e.g. ``cs_123:paid`` or
    ``refund:re_456``.  De-duplicating on it makes every route harmless to
    repeat.  ``amount`` is what the provider says was paid (``paid``) or
    refunded by this one refund (``refunded``); ``None`` otherwise.  The
    consumer compares it with the price; the gateway never judges it.
    """

    provider: str
    provider_event_id: str
    kind: NotificationKind
    registration_id: str | None
    reference: str
    amount: Money | None
    raw_type: str
    #: The provider's reason for a dispute, when it gives one (not kept for
    #: a fact retried later: informational only).
    reason: str | None = None

    @property
    def subject_id(self) -> str:
        """What a correction is about: the dispute, reversal or refund id.
        Correction fact ids are ``<what>:<provider id>[:<step>]``
        (``dispute:dp_1:withdrawn``, ``reversal:CAP1``, ``refund_failed:re_1``),
        so the subject survives the fact's round trip through the inbox."""
        parts = self.provider_event_id.split(":")
        return parts[1] if len(parts) > 1 else self.provider_event_id


@runtime_checkable
class PaymentGateway(Protocol):
    """What every provider implementation guarantees.

    * Errors are domain errors with stable codes: wrong or insufficient
      credentials raise :class:`~ledger.errors.ProviderCredentialsInvalid`;
      timeouts, connection failures, 5xx and 429 raise
      :class:`~ledger.errors.ProviderUnavailable` (safe to retry later);
      other refusals raise :class:`ProviderRejectedRequest`.  No provider SDK
      or ``requests`` exception escapes.
    * No secret is ever put in an exception message or a log line.
    * Calls block for at most the configured timeout per HTTP request and
      retry nothing themselves: the caller owns retry policy.
    * Instances hold no per-organizer state and are safe to share between
      threads.
    """

    provider: str

    def validate_credentials(self, creds: Credentials) -> None:
        """Check the credentials against the provider with a harmless call.

        Raises ``ValidationFailed`` when a field is missing,
        ``ProviderCredentialsInvalid`` (naming the missing permission where
        the provider tells) when refused, ``ProviderUnavailable`` on outage.
        Creates nothing at the provider.
        """
        ...

    def start_checkout(self, creds: Credentials, req: CheckoutRequest) -> Checkout:
        """Open (or find again) the hosted checkout for ``req.registration_id``.

        Idempotent: provider-side keys derive from our ids, so a retry after a
        crash or a lost response returns the same session/order instead of a
        second one.  Raises ``ProviderUnavailable`` on outage, in which case
        nothing may be recorded and the caller can retry.
        """
        ...

    def parse_notification(
        self,
        creds: Credentials,
        headers: Mapping[str, str],
        raw_body: bytes,
        now: datetime | None = None,
    ) -> list[Notification]:
        """Verify a webhook with the provider's real scheme, then map it.

        ``raw_body`` must be the exact bytes received.  Raises
        ``InvalidSignature`` when the signature is missing, tampered, made
        with another key or (where the scheme carries a time) older than the
        tolerance relative to ``now`` (default: the current UTC time).
        Returns ``[]`` for event types or objects the ledger does not track.

        May call the provider (PayPal verifies through its API; refunds are
        traced back to their checkout), so it can raise
        ``ProviderUnavailable``: answer the webhook with a 5xx then, and the
        provider delivers it again later.  A verified body that is not a JSON
        object raises ``ProviderRejectedRequest``.
        """
        ...

    def fetch_status(self, creds: Credentials, reference: str) -> Notification | None:
        """Ask the provider where a checkout stands (reconciler, return page).

        Returns ``None`` while nothing has happened yet (checkout open).
        """
        ...

    def expire_checkout(self, creds: Credentials, reference: str) -> Notification | None:
        """Make the checkout unpayable at the provider: its hold lapsed or the
        registration was closed early (reject, cancel).  Idempotent.

        Returns where the checkout stands afterwards -- ``expired``, or
        ``paid`` when the money arrived first (then the caller books it) --
        or ``None`` when the provider cannot tell.  Stripe expires the
        Checkout Session, PayU cancels (``DELETE``) the order; PayPal has no
        call for an uncaptured order, so the ledger simply never captures it.
        """
        ...


@runtime_checkable
class CapturingGateway(PaymentGateway, Protocol):
    """A gateway whose payments need a second call after the payer approves
    (PayPal Orders v2 with intent CAPTURE)."""

    def capture(self, creds: Credentials, reference: str) -> Notification:
        """Capture an approved order.  Idempotent: capturing twice reports
        the same capture instead of charging twice."""
        ...


def header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive header lookup that works on plain dicts too."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None
