"""PayPal Orders v2 with plain ``requests`` (R2).

Why it is shaped this way:

* **Idempotency.**  Order creation sends ``PayPal-Request-Id:
  order-{registration_id}`` and capture ``capture-{order_id}``; PayPal replays
  the first answer for a repeated id, so a retry after a crash returns the
  same order and a repeated capture never charges twice.  A capture refused as
  ``ORDER_ALREADY_CAPTURED`` is answered from the order itself.
* **Two steps.**  The participant approves on PayPal, then the ledger
  captures: ``CHECKOUT.ORDER.APPROVED`` is reported as ``pending`` so the
  service knows to call :meth:`PaypalGateway.capture`.
* **Two ways to connect (R2).**  The article's way: the platform holds one
  PayPal REST app in its configuration (``LEDGER_PAYPAL_CLIENT_ID``,
  ``_CLIENT_SECRET``, ``_WEBHOOK_ID``) and the organizer connects only their
  PayPal identity, ``merchant_id`` or ``email``; orders are created with the
  platform's app and name the organizer as ``purchase_units[].payee``, so the
  money goes straight to them.  Or the organizer's own REST app (client id,
  secret, webhook id), as before.  Platform-mode orders are confirmed on the
  participant's return (which captures), by the platform app's webhook at
  ``/v1/webhooks/paypal/platform`` (PayPal sends an app's webhooks to one URL,
  so the fact finds its connection through its registration,
  ``ledger.provider_notifications``) and by the reconciler polling them at the
  steady interval (``confirms_by_polling_only``).
* **Webhook verification** uses PayPal's verify-webhook-signature API with the
  app's ``webhook_id``, after refusing stale transmissions.  PayPal
  checks the event as it re-serialises it, so the parsed body is passed on
  untouched.  Mapping lives in :mod:`.paypal_events`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

import requests

from ledger.errors import InvalidSignature, LedgerError, ProviderCredentialsInvalid, ValidationFailed
from ledger.providers.base import (
    Checkout,
    CheckoutRequest,
    Credentials,
    Notification,
    ProviderRejectedRequest,
    header,
)
from ledger.providers.description import (
    ALL_CURRENCIES,
    STRIPE_ONLY,
    CredentialField,
    ProviderDescription,
)
from ledger.providers.endpoints import ProviderEndpoints
from ledger.providers.notification_fields import mapped
from ledger.providers.paypal_events import check_transmission_age, expired_order, from_order, map_event
from ledger.providers.provider_http import JSON, json_of, parse_json_body, send

PROVIDER = "PayPal"

_TRANSMISSION_HEADERS = {
    "transmission_id": "PAYPAL-TRANSMISSION-ID",
    "transmission_time": "PAYPAL-TRANSMISSION-TIME",
    "transmission_sig": "PAYPAL-TRANSMISSION-SIG",
    "cert_url": "PAYPAL-CERT-URL",
    "auth_algo": "PAYPAL-AUTH-ALGO",
}


class PaypalGateway(ProviderDescription):
    """:class:`~ledger.providers.base.CapturingGateway` for PayPal."""

    provider = "paypal"
    label = "PayPal"
    hint = ("Enter your PayPal merchant id or the e-mail of your PayPal account: the platform creates the "
            "orders and you are paid directly. Or connect your own REST app (client id, secret, webhook id).")
    credential_fields = (
        CredentialField("merchant_id", "PayPal merchant id", required=False),
        CredentialField("email", "PayPal account e-mail", required=False),
        CredentialField("client_id", "Client id (own REST app)", required=False),
        CredentialField("client_secret", "Client secret (own REST app)", secret=True, required=False),
        CredentialField("webhook_id", "Webhook id (own REST app)", required=False),
    )
    currencies = ALL_CURRENCIES - STRIPE_ONLY  # R6
    captures = True

    @classmethod
    def from_endpoints(cls, endpoints: ProviderEndpoints) -> PaypalGateway:
        platform = None
        if endpoints.paypal_client_id:
            platform = {"client_id": endpoints.paypal_client_id, "client_secret": endpoints.paypal_client_secret,
                        "webhook_id": endpoints.paypal_webhook_id}
        return cls(endpoints.paypal_api_base, timeout=endpoints.timeout_seconds, platform=platform)

    def __init__(self, api_base: str, *, timeout: float = 10.0, platform: Mapping[str, str] | None = None) -> None:
        """``platform``: the platform's own REST app (R2), or ``None``."""
        self._base = api_base.rstrip("/")
        self._timeout = timeout
        self._platform = dict(platform) if platform else None

    def platform_app(self) -> Credentials | None:
        """The platform's REST app (R2), which receives the webhooks of every
        platform-mode order at ``/v1/webhooks/paypal/platform``; ``None`` unset."""
        return self._platform

    @classmethod
    def confirms_by_polling_only(cls, creds: Mapping[str, str]) -> bool:
        """R2 platform mode: the platform app's webhooks do not reach the
        organizer's connection, so its orders are polled at the steady interval."""
        return _payee(creds) is not None

    def _app(self, creds: Mapping[str, str]) -> Credentials:
        """The REST app a connection calls PayPal with: the organizer's own,
        or (platform mode) the platform's."""
        if _payee(creds) is None:
            return creds
        if self._platform is None:
            raise ProviderCredentialsInvalid(
                "this platform has no PayPal app configured, so a merchant id or e-mail alone cannot be "
                "connected: connect your own REST app (client_id, client_secret, webhook_id)",
                field="merchant_id" if "merchant_id" in creds else "email",
            )
        return self._platform

    # -- life-cycle ---------------------------------------------------------

    def validate_credentials(self, creds: Credentials) -> None:
        """Platform mode: the identity is well-formed and the platform's app
        gets a token.  Own app: a token proves client id and secret; reading
        the webhook proves the webhook id belongs to that app (needed to
        verify notifications)."""
        _check_mode(creds)
        if _payee(creds) is not None:
            self._token(self._app(creds))
            return
        token = self._token(creds)
        path = f"/v1/notifications/webhooks/{quote(creds['webhook_id'], safe='')}"
        response = self._call("GET", path, token)
        if response.status_code == 404:
            raise ProviderCredentialsInvalid(
                "PayPal has no webhook with this webhook_id for this REST app",
                field="webhook_id",
            )
        if response.status_code != 200:
            answer = json_of(PROVIDER, response)
            raise _refusal(response.status_code, answer, "read the webhook")

    def start_checkout(self, creds: Credentials, req: CheckoutRequest) -> Checkout:
        token = self._token(self._app(creds))
        unit: dict[str, Any] = {
            "reference_id": req.registration_id,
            "custom_id": req.registration_id,
            "description": req.event_title[:127],
            # Decimal string straight from integer minor units (R8).
            "amount": {"currency_code": req.price.currency, "value": req.price.amount},
        }
        payee = _payee(creds)
        if payee is not None:  # R2 platform mode: the money goes to the organizer
            unit["payee"] = payee
        experience = {
            "return_url": req.success_url,
            "cancel_url": req.cancel_url,
            "shipping_preference": "NO_SHIPPING",
            "user_action": "PAY_NOW",
        }
        body = {
            "intent": "CAPTURE",
            "purchase_units": [unit],
            "payment_source": {"paypal": {"experience_context": experience}},
        }
        response = self._call(
            "POST",
            "/v2/checkout/orders",
            token,
            json=body,
            request_id=f"order-{req.registration_id}",
        )
        answer = json_of(PROVIDER, response)
        if response.status_code not in (200, 201):
            raise _refusal(response.status_code, answer, "create the order")
        links = {link.get("rel"): link.get("href") for link in answer.get("links") or []}
        url = links.get("payer-action") or links.get("approve")
        if not url:
            raise ProviderRejectedRequest("PayPal created an order without an approval link")
        return Checkout(provider=self.provider, url=str(url), reference=str(answer["id"]))

    def capture(self, creds: Credentials, reference: str) -> Notification:
        token = self._token(self._app(creds))
        path = f"/v2/checkout/orders/{quote(reference, safe='')}/capture"
        # PayPal answers ``return=minimal`` ({id, status, links}) unless asked:
        # ask for the representation, and read the order when it still lacks
        # the capture -- the money was taken either way.
        response = self._call("POST", path, token, json={}, request_id=f"capture-{reference}",
                              prefer="return=representation")
        answer = json_of(PROVIDER, response)
        if response.status_code in (200, 201):
            found = from_order(answer, "capture") if answer.get("purchase_units") else None
            if found is None:
                found = self.fetch_status(creds, reference)
        elif _issue(answer) == "ORDER_ALREADY_CAPTURED":
            found = self.fetch_status(creds, reference)
        else:
            raise _refusal(response.status_code, answer, "capture the order")
        if found is None:
            raise ProviderRejectedRequest(f"PayPal order {reference} has no capture")
        return found

    def parse_notification(
        self,
        creds: Credentials,
        headers: Mapping[str, str],
        raw_body: bytes,
        now: datetime | None = None,
    ) -> list[Notification]:
        event = self._verify(creds, headers, raw_body, now)
        return mapped("PayPal", lambda: map_event(event, lambda capture_id: self._capture_by_id(creds, capture_id)))

    def fetch_status(self, creds: Credentials, reference: str) -> Notification | None:
        token = self._token(self._app(creds))
        response = self._call("GET", f"/v2/checkout/orders/{quote(reference, safe='')}", token)
        answer = json_of(PROVIDER, response)
        if response.status_code != 200:
            raise _refusal(response.status_code, answer, "retrieve the order")
        return from_order(answer)

    def expire_checkout(self, creds: Credentials, reference: str) -> Notification | None:
        """PayPal orders carry no expiry and Orders v2 has no call that voids
        an uncaptured CAPTURE order: the ledger ends it by never capturing it
        (:class:`~ledger.payment_intake.PaymentIntake` refuses a capture once
        the hold lapsed), and PayPal drops the approval on its own.  Read the
        order first: a capture that already happened is money to book."""
        found = self.fetch_status(creds, reference)
        if found is not None and found.kind in ("paid", "failed", "expired"):
            return found
        return expired_order(reference, found.registration_id if found else None)

    # -- helpers ------------------------------------------------------------

    def _token(self, creds: Credentials) -> str:
        response = send(
            PROVIDER,
            "POST",
            f"{self._base}/v1/oauth2/token",
            auth=(creds["client_id"], creds["client_secret"]),
            data={"grant_type": "client_credentials"},
            timeout=self._timeout,
        )
        if response.status_code in (400, 401, 403):
            raise ProviderCredentialsInvalid(
                "PayPal refused the client id or secret (use the REST app's "
                "credentials for the same live/sandbox environment)",
                field="client_secret",
            )
        token = json_of(PROVIDER, response).get("access_token")
        if response.status_code != 200 or not isinstance(token, str):
            raise ProviderRejectedRequest(f"PayPal OAuth answered HTTP {response.status_code}")
        return token

    def _call(
        self,
        method: str,
        path: str,
        token: str,
        *,
        json: Any = None,
        body: bytes | None = None,
        request_id: str | None = None,
        prefer: str | None = None,
    ) -> requests.Response:
        """``json`` is serialized by ``requests``; ``body`` is sent as it is (JSON text)."""
        headers = {"Authorization": f"Bearer {token}"}
        if request_id:
            headers["PayPal-Request-Id"] = request_id
        if prefer:
            headers["Prefer"] = prefer
        if body is not None:
            headers["Content-Type"] = "application/json"
        return send(
            PROVIDER,
            method,
            f"{self._base}{path}",
            headers=headers,
            json=json,
            data=body,
            timeout=self._timeout,
        )

    def _verify(
        self,
        creds: Credentials,
        headers: Mapping[str, str],
        raw_body: bytes,
        now: datetime | None,
    ) -> JSON:
        fields = {name: header(headers, h) for name, h in _TRANSMISSION_HEADERS.items()}
        missing = sorted(h for name, h in _TRANSMISSION_HEADERS.items() if not fields[name])
        if missing:
            raise InvalidSignature(f"PayPal headers missing: {', '.join(missing)}")
        check_transmission_age(str(fields["transmission_time"]), now)
        event = parse_json_body(PROVIDER, raw_body)
        creds = self._app(creds)
        token = self._token(creds)
        # The event goes to PayPal as the very bytes it signed, never written
        # back from Python: a body Python reads but cannot write as strict
        # JSON (1e999 reads as inf) must not become a 500, nor a changed text.
        envelope = json.dumps({**fields, "webhook_id": creds.get("webhook_id")})
        request = f'{envelope[:-1]}, "webhook_event": {raw_body.decode("utf-8")}}}'.encode()
        response = self._call("POST", "/v1/notifications/verify-webhook-signature", token, body=request)
        answer = json_of(PROVIDER, response)
        if response.status_code != 200 or answer.get("verification_status") != "SUCCESS":
            raise InvalidSignature("PayPal did not verify this webhook's signature")
        return event

    def _capture_by_id(self, creds: Credentials, capture_id: str) -> JSON:
        token = self._token(self._app(creds))
        path = f"/v2/payments/captures/{quote(capture_id, safe='')}"
        response = self._call("GET", path, token)
        capture = json_of(PROVIDER, response)
        if response.status_code != 200:
            raise _refusal(response.status_code, capture, "retrieve the refunded capture")
        return capture


def _issue(answer: JSON) -> str | None:
    details = answer.get("details") or [{}]
    first = details[0] if isinstance(details, list) and details else {}
    return first.get("issue") if isinstance(first, dict) else None


def _refusal(http_status: int, answer: JSON, what: str) -> LedgerError:
    name = answer.get("name") or f"HTTP {http_status}"
    issue = _issue(answer)
    detail = f"{name} / {issue}" if issue else str(name)
    if http_status in (401, 403):
        return ProviderCredentialsInvalid(
            f"PayPal refused to {what} with these credentials ({detail}); "
            "the REST app needs the Accept payments feature",
            field="client_id",
        )
    return ProviderRejectedRequest(f"PayPal refused to {what}: {detail}")


#: PayPal's payee ``merchant_id``: the account's encrypted id (Orders v2:
#: 13 characters of ``2-9A-HJ-NP-Z``).
MERCHANT_ID = re.compile(r"[2-9A-HJ-NP-Z]{13}")
#: A plausible e-mail address (PayPal's own check decides at the first order).
EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,253}\.[^@\s.]{2,63}")
_OWN_APP = ("client_id", "client_secret", "webhook_id")


def _payee(creds: Mapping[str, str]) -> dict[str, str] | None:
    """R2 platform mode: the organizer as the order's payee; ``None`` for an own app."""
    if creds.get("merchant_id"):
        return {"merchant_id": creds["merchant_id"]}
    if creds.get("email"):
        return {"email_address": creds["email"]}
    return None


def _check_mode(creds: Mapping[str, str]) -> None:
    """Exactly one way to connect, each whole, refused per field before any call."""
    identity = [name for name in ("merchant_id", "email") if creds.get(name)]
    own = [name for name in _OWN_APP if creds.get(name)]
    if identity and own:
        raise ValidationFailed({name: ["connect either your PayPal identity (merchant_id or email) or your own "
                                       "REST app (client_id, client_secret, webhook_id), not both"] for name in own})
    if len(identity) == 2:
        raise ValidationFailed({"email": ["give merchant_id or email, not both"]})
    if identity == ["merchant_id"] and not MERCHANT_ID.fullmatch(creds["merchant_id"]):
        raise ValidationFailed({"merchant_id": ["a PayPal merchant id is 13 characters such as 7KQ4DKV3XQJ2C, "
                                                "shown under Account settings > Business information"]})
    if identity == ["email"] and not EMAIL.fullmatch(creds["email"]):
        raise ValidationFailed({"email": ["not an e-mail address"]})
    if not identity:
        missing = [name for name in _OWN_APP if not creds.get(name)]
        if missing:
            raise ValidationFailed({name: ["is required for your own REST app (or connect with merchant_id or "
                                           "email alone)"] for name in missing})
