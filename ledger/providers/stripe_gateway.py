"""Stripe through the official SDK (R1): Products, Prices, Checkout Sessions.

Why it is shaped this way:

* **Idempotency from our ids.**  The Product gets the custom id
  ``ledger_{event_id}`` and the idempotency key ``product-{event_id}``; the
  Price the key ``price-{event_id}-{minor}-{currency}`` and a matching
  ``lookup_key``; the Checkout Session the key
  ``checkout-{registration_id}-{expires_at}``: the expiry is fixed by the
  seat hold the session is opened under (R20), so a retry under the same
  hold replays the same session, and one under a new hold (the old one
  lapsed, its session was never handed out) opens a fresh one instead of
  an ``idempotency_error``.
  Stripe replays the first answer for a repeated key (for 24 h), so a retry
  after a crash returns the *same* session.  After the keys expire the custom
  product id and the price lookup key still find the existing objects.
* **Restricted keys.**  R1 lets organizers paste a restricted key with
  Checkout Sessions, Products and Prices *write*.  Validation probes each
  permission with an empty ``POST`` that Stripe refuses as incomplete (400)
  when the permission is there and as forbidden (403) when it is not, so
  nothing is created and the organizer is told which permission is missing.
* **Webhooks.**  ``Stripe-Signature`` is checked by the SDK; the 300 s
  tolerance against an injectable clock (:mod:`.stripe_events`, which also
  documents how events map to notifications).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from types import MappingProxyType

import stripe
from stripe.params.checkout import SessionCreateParams

from ledger.errors import (
    InvalidSignature,
    LedgerError,
    ProviderCredentialsInvalid,
    ProviderUnavailable,
)
from ledger.providers.base import (
    Checkout,
    CheckoutRequest,
    Credentials,
    Notification,
    ProviderRejectedRequest,
    header,
)
from ledger.providers.credentials import require_fields
from ledger.providers.description import (
    ALL_CURRENCIES,
    CredentialField,
    ProviderDescription,
)
from ledger.providers.endpoints import ProviderEndpoints
from ledger.providers.notification_fields import mapped
from ledger.providers.provider_http import JSON, parse_json_body
from ledger.providers.stripe_events import (
    check_signature_age,
    map_event,
    session_status,
)

#: The restricted-key permissions R1 requires, as Stripe's dashboard names them.
PRODUCTS_WRITE = "Products: Write"
PRICES_WRITE = "Prices: Write"
SESSIONS_WRITE = "Checkout Sessions: Write"


class StripeGateway(ProviderDescription):
    """:class:`~ledger.providers.base.PaymentGateway` for Stripe."""

    provider = "stripe"
    label = "Stripe"
    hint = ("Paste a secret key, or a restricted key allowing Checkout Sessions, Products and Prices (write). "
            "A webhook signing secret is optional: it only makes payment confirmation faster.")
    credential_fields = (
        CredentialField("api_key", "Secret or restricted key", secret=True),
        # R1: a restricted key cannot create webhook endpoints, so the key
        # alone must do: payments are then confirmed on the participant's
        # return and by polling open Checkout Sessions (``confirms_by_polling_only``).
        CredentialField("webhook_secret", "Webhook signing secret (optional)", secret=True, required=False),
    )
    currencies = ALL_CURRENCIES  # R6: the only provider for HUF, BGN and RON
    #: Stripe's minimum charge amounts above one unit of the currency, from
    #: Stripe's documentation ("Supported currencies" → "Minimum and maximum
    #: charge amounts", docs.stripe.com/currencies).  Currencies missing there
    #: (ILS, PHP, RUB) must be worth at least USD 0.50 at the day's rate, which
    #: no fixed table can say: they are checked against R6 only.
    minimum_charge = MappingProxyType({
        "CZK": "15.00", "DKK": "2.50", "HKD": "4.00", "HUF": "175.00", "MXN": "10.00",
        "NOK": "3.00", "PLN": "2.00", "RON": "2.00", "SEK": "3.00", "THB": "10.00",
    })  # fmt: skip
    #: Stripe: ``expires_at`` "between 30 minutes and 24 hours after the
    #: Checkout Session is created" (docs.stripe.com/api/checkout/sessions/create).
    #: The ledger counts from the moment the seat was held, which is at most
    #: the opening hold (2 min) before the session is created, plus a minute
    #: for clocks: 33 min; never above 23 h 55 min.
    checkout_lifetime = (timedelta(minutes=33), timedelta(hours=23, minutes=55))

    @classmethod
    def from_endpoints(cls, endpoints: ProviderEndpoints) -> StripeGateway:
        return cls(
            endpoints.stripe_api_base,
            timeout=endpoints.timeout_seconds,
            max_network_retries=endpoints.stripe_max_network_retries,
        )

    def __init__(self, api_base: str, *, timeout: float = 10.0, max_network_retries: int = 0) -> None:
        self._api_base = api_base.rstrip("/")
        self._retries = max_network_retries
        # One HTTP client per gateway: it keeps a requests.Session per thread.
        self._http = stripe.RequestsClient(timeout=timeout)

    # -- life-cycle ---------------------------------------------------------

    @classmethod
    def confirms_by_polling_only(cls, creds: Mapping[str, str]) -> bool:
        """R1: without a webhook signing secret no webhook can be verified."""
        return not creds.get("webhook_secret")

    def validate_credentials(self, creds: Credentials) -> None:
        require_fields(type(self), creds)
        if creds.get("webhook_secret") and not creds["webhook_secret"].startswith("whsec_"):
            raise ProviderCredentialsInvalid(
                "webhook_secret must be the endpoint's signing secret (it starts with whsec_)",
                field="webhook_secret",
            )
        client = self._client(creds)
        for path, permission in (
            ("/v1/products", PRODUCTS_WRITE),
            ("/v1/prices", PRICES_WRITE),
            ("/v1/checkout/sessions", SESSIONS_WRITE),
        ):
            try:
                client.raw_request("post", path)
            except stripe.InvalidRequestError as exc:
                if exc.http_status == 400:
                    continue  # allowed, and refused only for missing parameters
                # Only the documented answers count: a 404 (or anything else)
                # means the probe did not reach what it checks -- never "allowed".
                raise ProviderRejectedRequest(
                    f"Stripe answered HTTP {exc.http_status} to the '{permission}' check ({path}); only 400 "
                    "(allowed) or 403 (not allowed) is expected: check the key and LEDGER_STRIPE_API_BASE"
                ) from exc
            except stripe.StripeError as exc:
                raise _translate(exc, permission, "check the key") from exc

    def start_checkout(self, creds: Credentials, req: CheckoutRequest) -> Checkout:
        client = self._client(creds)
        product_id = self._ensure_product(client, req)
        price_id = self._ensure_price(client, req, product_id)
        ours = {"registration_id": req.registration_id, "event_id": req.event_id}
        key = f"checkout-{req.registration_id}"
        params: SessionCreateParams = {
            "mode": "payment",
            "line_items": [{"price": price_id, "quantity": 1}],
            "success_url": req.success_url,
            "cancel_url": req.cancel_url,
            "client_reference_id": req.registration_id,
            "customer_email": req.participant_email,
            "metadata": ours,
            # Copied to the PaymentIntent so failures and refunds,
            # which arrive as PaymentIntent/Refund objects, are ours.
            "payment_intent_data": {"metadata": ours},
        }
        if req.expires_at is not None:  # R20: unpayable once the seat's hold ends
            params["expires_at"] = int(req.expires_at.timestamp())
            key += f"-{params['expires_at']}"
        try:
            session = client.v1.checkout.sessions.create(
                params=params,
                options={"idempotency_key": key},
            )
        except stripe.IdempotencyError as exc:
            raise ProviderRejectedRequest(
                "Stripe already has a checkout for this registration with other "
                "details (e.g. changed return URLs); it cannot be replayed"
            ) from exc
        except stripe.StripeError as exc:
            raise _translate(exc, SESSIONS_WRITE, "create the Checkout Session") from exc
        if not session.url:
            raise ProviderRejectedRequest("Stripe returned a Checkout Session without a URL")
        return Checkout(provider=self.provider, url=session.url, reference=session.id)

    def parse_notification(
        self,
        creds: Credentials,
        headers: Mapping[str, str],
        raw_body: bytes,
        now: datetime | None = None,
    ) -> list[Notification]:
        secret = creds.get("webhook_secret") or ""
        signature = header(headers, "Stripe-Signature")
        try:
            stripe.WebhookSignature.verify_header(raw_body, signature, secret, tolerance=None)
        except stripe.SignatureVerificationError as exc:
            raise InvalidSignature(f"Stripe-Signature rejected: {exc.user_message}") from None
        except ValueError:  # body is not UTF-8
            raise InvalidSignature("Stripe-Signature rejected: body is not UTF-8") from None
        assert signature is not None  # verify_header refuses a missing header
        check_signature_age(signature, now)
        event = parse_json_body("Stripe", raw_body)
        return mapped("Stripe", lambda: map_event(event, lambda intent: self._session_for_intent(creds, intent)))

    def fetch_status(self, creds: Credentials, reference: str) -> Notification | None:
        client = self._client(creds)
        try:
            session = client.v1.checkout.sessions.retrieve(reference).to_dict()
        except stripe.StripeError as exc:
            raise _translate(exc, SESSIONS_WRITE, "retrieve the Checkout Session") from exc
        return session_status(session)

    def expire_checkout(self, creds: Credentials, reference: str) -> Notification | None:
        """``POST /v1/checkout/sessions/{id}/expire``: Stripe expires only an
        open session (400 otherwise), so a refusal is answered by reading the
        session -- it may have been paid meanwhile."""
        client = self._client(creds)
        try:
            session = client.v1.checkout.sessions.expire(reference).to_dict()
        except stripe.InvalidRequestError as exc:
            if exc.http_status != 400:
                raise _translate(exc, SESSIONS_WRITE, "expire the Checkout Session") from exc
            return self.fetch_status(creds, reference)
        except stripe.StripeError as exc:
            raise _translate(exc, SESSIONS_WRITE, "expire the Checkout Session") from exc
        return session_status(session)

    # -- checkout helpers ---------------------------------------------------

    def _client(self, creds: Credentials) -> stripe.StripeClient:
        return stripe.StripeClient(
            creds["api_key"],
            base_addresses={"api": self._api_base},
            max_network_retries=self._retries,
            http_client=self._http,
        )

    def _ensure_product(self, client: stripe.StripeClient, req: CheckoutRequest) -> str:
        """One Product per event (R5), found again by its custom id."""
        product_id = f"ledger_{req.event_id}"
        try:
            client.v1.products.create(
                params={
                    "id": product_id,
                    "name": req.event_title,
                    "metadata": {"event_id": req.event_id},
                },
                options={"idempotency_key": f"product-{req.event_id}"},
            )
        except stripe.IdempotencyError:
            pass  # created earlier under another title: the id is what matters
        except stripe.InvalidRequestError as exc:
            if exc.code != "resource_already_exists":
                raise _translate(exc, PRODUCTS_WRITE, "create the Product") from exc
        except stripe.StripeError as exc:
            raise _translate(exc, PRODUCTS_WRITE, "create the Product") from exc
        return product_id

    def _ensure_price(self, client: stripe.StripeClient, req: CheckoutRequest, product_id: str) -> str:
        """One Price per event and amount; R7 makes the amount immutable, so
        the key never sees different parameters."""
        price = req.price
        lookup_key = f"ledger_{req.event_id}_{price.minor}_{price.currency}"
        idempotency_key = f"price-{req.event_id}-{price.minor}-{price.currency}"
        try:
            created = client.v1.prices.create(
                params={
                    "product": product_id,
                    "unit_amount": price.minor,
                    "currency": price.currency.lower(),
                    "lookup_key": lookup_key,
                    "metadata": {"event_id": req.event_id},
                },
                options={"idempotency_key": idempotency_key},
            )
            return created.id
        except stripe.InvalidRequestError as exc:
            found = self._price_by_lookup_key(client, lookup_key)
            if found is None:
                raise _translate(exc, PRICES_WRITE, "create the Price") from exc
            return found
        except stripe.StripeError as exc:
            raise _translate(exc, PRICES_WRITE, "create the Price") from exc

    def _price_by_lookup_key(self, client: stripe.StripeClient, key: str) -> str | None:
        try:
            found = client.v1.prices.list(params={"lookup_keys": [key], "limit": 1})
        except stripe.StripeError as exc:
            raise _translate(exc, PRICES_WRITE, "look the Price up") from exc
        return found.data[0].id if found.data else None

    def _session_for_intent(self, creds: Credentials, intent_id: str) -> JSON | None:
        client = self._client(creds)
        try:
            found = client.v1.checkout.sessions.list(params={"payment_intent": intent_id, "limit": 1})
        except stripe.StripeError as exc:
            raise _translate(exc, SESSIONS_WRITE, "look the Checkout Session up") from exc
        return found.data[0].to_dict() if found.data else None


def _translate(exc: stripe.StripeError, permission: str, what: str) -> LedgerError:
    """SDK errors to domain errors; Stripe's messages mask keys already."""
    if isinstance(exc, stripe.AuthenticationError):
        return ProviderCredentialsInvalid(
            "Stripe rejected the API key: it is wrong, revoked or from another account",
            field="api_key",
        )
    if isinstance(exc, stripe.PermissionError):
        return ProviderCredentialsInvalid(
            f"The Stripe key lacks the '{permission}' permission needed to {what}; "
            f"a restricted key needs {PRODUCTS_WRITE}, {PRICES_WRITE} and "
            f"{SESSIONS_WRITE} "
            f"(Stripe said: {exc.user_message})",
            field="api_key",
        )
    if isinstance(exc, stripe.APIConnectionError | stripe.RateLimitError):
        return ProviderUnavailable(f"Stripe could not be reached to {what}; try again later")
    if isinstance(exc, stripe.APIError) and (exc.http_status or 500) >= 500:
        return ProviderUnavailable(f"Stripe is unavailable (HTTP {exc.http_status}) to {what}; try again later")
    return ProviderRejectedRequest(f"Stripe refused to {what}: {exc.user_message}")
