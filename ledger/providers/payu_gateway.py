"""PayU REST API v2.1 with plain ``requests`` (R3: Polish organizers, PLN only).

Why it is shaped this way:

* **OAuth per call.**  ``client_credentials`` tokens live ~12 h, but fetching
  one is cheap and keeping none means no cache to invalidate when an
  organizer rotates the secret.  Getting a token is also the credential check.
* **The 302.**  PayU answers a created order with ``302 Found`` whose JSON body
  carries ``redirectUri`` and ``orderId``; following the redirect would fetch
  the payment page instead, so redirects are never followed.
* **Idempotency.**  ``extOrderId`` is the registration id and PayU refuses a
  second order with it (``ERROR_ORDER_NOT_UNIQUE``), so a retry can never make
  a second order silently.  The existing order is then looked up by
  ``extOrderId``.  PayU's order lookup does not return the payment link, so:
  when the order is already paid (or awaiting the seller's confirmation) the
  participant is sent to ``success_url``; when it is still open it is
  *cancelled* (nobody may pay it: the participant must never pay two orders)
  and a new order is opened under ``{registration id}~2`` (issue 18);
  :class:`PayuPaymentLinkLost` only when PayU refuses that cancellation.
* **Confirmation.**  An order WAITING_FOR_CONFIRMATION is ``authorized``: the
  ledger confirms it (:meth:`PayuGateway.capture`) or cancels it.
* **Notifications.**  ``OpenPayu-Signature`` is ``algo(raw_body + second_key)``
  in hex (MD5 or SHA-256), compared in constant time.  It carries no time, so
  staleness cannot be judged here; replays are harmless because facts are
  keyed ``{orderId}:{status}`` / ``refund:{refundId}``, the same keys that
  :meth:`PayuGateway.fetch_status` produces.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import datetime
from urllib.parse import quote

from ledger.errors import (
    CurrencyNotSupportedByProvider,
    InvalidSignature,
    LedgerError,
    ProviderCredentialsInvalid,
)
from ledger.providers.base import (
    Checkout,
    CheckoutRequest,
    Credentials,
    Notification,
    NotificationKind,
    ProviderRejectedRequest,
    header,
)
from ledger.providers.credentials import require_fields
from ledger.providers.description import (
    CredentialField,
    ProviderDescription,
)
from ledger.providers.endpoints import ProviderEndpoints
from ledger.providers.notification_fields import currency, mapped, minor_units, obj
from ledger.providers.provider_http import JSON, json_of, parse_json_body, send

PROVIDER = "PayU"

#: Order status -> ledger kind; NEW (created, nobody paying yet) tells nothing.
#: REJECTED (the shop turned down a WAITING_FOR_CONFIRMATION order; PayU gives
#: the money back to the payer) ends the checkout like CANCELED: the seat goes
#: back.  The first release ignored it and kept the seat held.
#: WAITING_FOR_CONFIRMATION (the POS does not receive payments automatically):
#: the payer's money is held by PayU until the shop confirms or rejects it;
#: the first release reported it as "pending" and never booked it, while PayU
#: had already sent the participant to the success page.  Now it is
#: ``authorized``: recorded (``PaymentAuthorized``), then confirmed
#: (:meth:`PayuGateway.capture`) while the seat is held, else released.
_ORDER_KINDS: dict[str, NotificationKind] = {
    "PENDING": "pending",
    "WAITING_FOR_CONFIRMATION": "authorized",
    "COMPLETED": "paid",
    "CANCELED": "failed",
    "REJECTED": "failed",
}
_DIGESTS = {"MD5": "md5", "SHA-256": "sha256", "SHA256": "sha256"}
_SECOND_KEY = re.compile(r"^[0-9a-fA-F]{32}$")


class PayuPaymentLinkLost(LedgerError):
    """A PayU order for this registration exists but its payment link was
    lost (the first answer never reached us) and PayU does not re-issue it.

    ``reference`` is PayU's ``orderId``: record it so the webhook or the
    reconciler can still settle the registration.
    """

    code = "provider_payment_link_lost"
    status = 409
    title = "The payment link for this registration is no longer available"

    def __init__(self, reference: str) -> None:
        super().__init__(
            f"PayU order {reference} already exists for this registration but PayU "
            "does not show its payment link again; it expires unpaid after its "
            "validity time"
        )
        self.reference = reference


class PayuGateway(ProviderDescription):
    """:class:`~ledger.providers.base.PaymentGateway` for PayU."""

    provider = "payu"
    label = "PayU"
    hint = "Polish registered businesses only, PLN only; bookings start once PayU verifies the shop — R3."
    credential_fields = (
        CredentialField("shop_id", "Shop id (PublicShopID)"),
        CredentialField("pos_id", "POS id (posId)"),
        CredentialField("client_id", "Client id"),
        CredentialField("client_secret", "Client secret", secret=True),
        CredentialField("second_key", "Second key (MD5)", secret=True),
    )
    countries = frozenset({"PL"})  # R3
    countries_label = "Poland"
    currencies = frozenset({"PLN"})  # R3
    #: Orders WAITING_FOR_CONFIRMATION are confirmed by the ledger (:meth:`capture`).
    captures = True

    @classmethod
    def from_endpoints(cls, endpoints: ProviderEndpoints) -> PayuGateway:
        return cls(endpoints.payu_api_base, timeout=endpoints.timeout_seconds)

    def __init__(self, api_base: str, *, timeout: float = 10.0) -> None:
        self._base = api_base.rstrip("/")
        self._timeout = timeout

    # -- life-cycle ---------------------------------------------------------

    def validate_credentials(self, creds: Credentials) -> None:
        """An OAuth token proves client id and secret; the second key cannot
        be checked online, so only its shape (32 hex digits) is checked."""
        require_fields(type(self), creds)
        if not _SECOND_KEY.match(creds["second_key"]):
            raise ProviderCredentialsInvalid(
                "second_key must be the POS's 'Second key (MD5)': 32 hexadecimal characters",
                field="second_key",
            )
        self._token(creds)

    def start_checkout(self, creds: Credentials, req: CheckoutRequest) -> Checkout:
        """Create the order under ``extOrderId`` = the registration id.  PayU
        refuses a second order under the same id (``ERROR_ORDER_NOT_UNIQUE``:
        the first answer was lost).  That order is then *reused* when it is
        paid or awaiting the shop's confirmation (the participant goes to the
        success page), and otherwise *cancelled* (its link cannot be shown
        again, and a participant who got it must not pay twice) and replaced
        by a new order under ``{registration id}~2``, ``~3`` …"""
        if req.price.currency != "PLN":
            raise CurrencyNotSupportedByProvider(req.price.currency, "payu")  # R3
        token = self._token(creds)
        for n in range(1, MAX_ORDERS + 1):
            ext = req.registration_id if n == 1 else f"{req.registration_id}{_EXT_SEPARATOR}{n}"
            response = send(
                PROVIDER,
                "POST",
                f"{self._base}/api/v2_1/orders",
                json=self._order_body(creds, req, ext),
                headers=_bearer(token),
                timeout=self._timeout,
            )
            answer = json_of(PROVIDER, response)
            status_code = (answer.get("status") or {}).get("statusCode")
            if response.status_code in (200, 201, 302) and status_code == "SUCCESS":
                return Checkout(
                    provider=self.provider,
                    url=str(answer["redirectUri"]),
                    reference=str(answer["orderId"]),
                )
            if status_code != "ERROR_ORDER_NOT_UNIQUE":
                raise _refusal(response.status_code, answer, "create the order")
            found = self._existing_checkout(token, req, ext)
            if found is not None:
                return found
        raise ProviderRejectedRequest(f"PayU has {MAX_ORDERS} orders for this registration; no new one is opened")

    def _order_body(self, creds: Credentials, req: CheckoutRequest, ext: str) -> JSON:
        return {
            "extOrderId": ext,
            "notifyUrl": req.notify_url,
            "continueUrl": req.success_url,
            "customerIp": req.customer_ip or "127.0.0.1",
            "merchantPosId": creds["pos_id"],
            "description": req.event_title[:4000],
            "currencyCode": "PLN",
            # Grosze as a string, straight from the integer minor units (R8).
            "totalAmount": str(req.price.minor),
            "buyer": {"email": req.participant_email, "language": "pl"},
            **_validity(req),
            "products": [
                {
                    "name": req.event_title,
                    "unitPrice": str(req.price.minor),
                    "quantity": "1",
                }
            ],
        }

    def capture(self, creds: Credentials, reference: str) -> Notification:
        """Confirm a WAITING_FOR_CONFIRMATION order (``PUT
        /api/v2_1/orders/{orderId}/status`` with ``orderStatus`` COMPLETED):
        PayU then takes the money and notifies COMPLETED.  Idempotent: an
        order already COMPLETED is answered from the order itself."""
        token = self._token(creds)
        path = f"/api/v2_1/orders/{quote(reference, safe='')}"
        response = send(
            PROVIDER,
            "PUT",
            f"{self._base}{path}/status",
            json={"orderId": reference, "orderStatus": "COMPLETED"},
            headers=_bearer(token),
            timeout=self._timeout,
        )
        answer = json_of(PROVIDER, response)
        ok = response.status_code == 200 and (answer.get("status") or {}).get("statusCode") == "SUCCESS"
        order = self._order(token, path)
        found = _from_order(order, "order confirm") if order else None
        if found is None or (not ok and found.kind != "paid"):
            raise _refusal(response.status_code, answer, "confirm the order")
        return found

    def parse_notification(
        self,
        creds: Credentials,
        headers: Mapping[str, str],
        raw_body: bytes,
        now: datetime | None = None,
    ) -> list[Notification]:
        verify_signature(
            header(headers, "OpenPayu-Signature") or header(headers, "X-OpenPayU-Signature"),
            raw_body,
            creds.get("second_key") or "",
        )
        body = parse_json_body(PROVIDER, raw_body)
        return mapped(PROVIDER, lambda: _from_body(body))

    def fetch_status(self, creds: Credentials, reference: str) -> Notification | None:
        token = self._token(creds)
        order = self._order(token, f"/api/v2_1/orders/{quote(reference, safe='')}")
        return _from_order(order, "order retrieve") if order else None

    def expire_checkout(self, creds: Credentials, reference: str) -> Notification | None:
        """``DELETE /api/v2_1/orders/{orderId}`` cancels an order nobody paid
        (PayU then notifies CANCELED).  A refusal (e.g. already COMPLETED) is
        answered by reading the order: it may have been paid meanwhile."""
        token = self._token(creds)
        response = send(
            PROVIDER,
            "DELETE",
            f"{self._base}/api/v2_1/orders/{quote(reference, safe='')}",
            headers=_bearer(token),
            timeout=self._timeout,
        )
        if response.status_code == 404:
            return None
        answer = json_of(PROVIDER, response)
        if response.status_code == 200 and (answer.get("status") or {}).get("statusCode") == "SUCCESS":
            return _from_order({"orderId": reference, "extOrderId": answer.get("extOrderId"),
                                "status": "CANCELED"}, "order cancel")
        return self.fetch_status(creds, reference)

    # -- helpers ------------------------------------------------------------

    def _token(self, creds: Credentials) -> str:
        response = send(
            PROVIDER,
            "POST",
            f"{self._base}/pl/standard/user/oauth/authorize",
            data={
                "grant_type": "client_credentials",
                "client_id": creds["client_id"],
                "client_secret": creds["client_secret"],
            },
            timeout=self._timeout,
        )
        if response.status_code in (400, 401, 403):
            raise ProviderCredentialsInvalid(
                "PayU refused the OAuth client id or client secret "
                "(check 'OAuth protocol - client_id / client_secret' of the POS)",
                field="client_secret",
            )
        answer = json_of(PROVIDER, response)
        token = answer.get("access_token")
        if response.status_code != 200 or not isinstance(token, str):
            raise ProviderRejectedRequest(f"PayU OAuth answered HTTP {response.status_code}")
        return token

    def _order(self, token: str, path: str) -> JSON | None:
        response = send(
            PROVIDER,
            "GET",
            f"{self._base}{path}",
            headers=_bearer(token),
            timeout=self._timeout,
        )
        if response.status_code == 404:
            return None
        answer = json_of(PROVIDER, response)
        orders = answer.get("orders")
        if response.status_code != 200 or not isinstance(orders, list):
            raise _refusal(response.status_code, answer, "retrieve the order")
        return orders[0] if orders else None

    def _existing_checkout(self, token: str, req: CheckoutRequest, ext: str) -> Checkout | None:
        """The order PayU already has under ``ext``: reused when paid or
        awaiting confirmation; ``None`` (open another) when it is dead or was
        cancelled here; :class:`PayuPaymentLinkLost` when it is still open and
        PayU refused to cancel it."""
        order = self._order(token, f"/api/v2_1/orders/ext/{quote(ext, safe='')}")
        if order is None:
            raise ProviderRejectedRequest("PayU says an order for this registration exists but cannot find it")
        reference = str(order["orderId"])
        status = order.get("status")
        if status in ("COMPLETED", "WAITING_FOR_CONFIRMATION"):
            return Checkout(provider=self.provider, url=req.success_url, reference=reference)
        if status in ("CANCELED", "REJECTED"):
            return None
        if self._cancel(token, reference):
            return None
        raise PayuPaymentLinkLost(reference)

    def _cancel(self, token: str, reference: str) -> bool:
        response = send(
            PROVIDER,
            "DELETE",
            f"{self._base}/api/v2_1/orders/{quote(reference, safe='')}",
            headers=_bearer(token),
            timeout=self._timeout,
        )
        if response.status_code == 404:
            return False
        answer = json_of(PROVIDER, response)
        return response.status_code == 200 and (answer.get("status") or {}).get("statusCode") == "SUCCESS"


def verify_signature(value: str | None, raw_body: bytes, second_key: str) -> None:
    """Check ``sender=checkout;signature=…;algorithm=MD5;content=DOCUMENT``."""
    if not value:
        raise InvalidSignature("OpenPayu-Signature header is missing")
    parts = dict(item.split("=", 1) for item in value.split(";") if "=" in item)
    digest = _DIGESTS.get(parts.get("algorithm", "").upper())
    received = parts.get("signature", "").lower()
    if digest is None:
        raise InvalidSignature("OpenPayu-Signature uses an unsupported algorithm")
    if not second_key or not received:
        raise InvalidSignature("OpenPayu-Signature cannot be checked")
    expected = hashlib.new(digest, raw_body + second_key.encode()).hexdigest()
    if not hmac.compare_digest(expected, received):
        raise InvalidSignature("OpenPayu-Signature does not match the body")


def _from_body(body: JSON) -> list[Notification]:
    """A verified notification: a refund's or an order's (PayU sends one of them)."""
    refund = body.get("refund")
    if refund is not None:
        return _from_refund(body, obj(refund, "refund"))
    order = body.get("order")
    if order is not None:
        found = _from_order(obj(order, "order"), "order notification")
        return [found] if found else []
    return []


def _from_order(order: JSON, raw_type: str) -> Notification | None:
    status = str(order.get("status", ""))
    kind = _ORDER_KINDS.get(status)
    if kind is None or not order.get("orderId"):
        return None
    amount = None
    if kind in ("paid", "authorized"):  # PayU documents totalAmount as a string of digits ("4900")
        code = currency(order.get("currencyCode"), "order.currencyCode")
        amount = minor_units(order.get("totalAmount"), code, "order.totalAmount", digit_strings=True)
    return Notification(
        provider="payu",
        provider_event_id=f"{order['orderId']}:{status}",
        kind=kind,
        registration_id=registration_of(order.get("extOrderId")),
        reference=str(order["orderId"]),
        amount=amount,
        raw_type=f"{raw_type} {status}",
    )


def _from_refund(body: JSON, refund: JSON) -> list[Notification]:
    """Only a FINALIZED refund moved money; a PENDING one has not yet.  A
    CANCELED one never will (developers.payu.com, "Refund statuses"): if the
    ledger recorded it, it failed (``refund_failed``: the money is owed back
    again); if not, there is nothing to correct."""
    status = refund.get("status")
    if status not in ("FINALIZED", "CANCELED") or not body.get("orderId") or not refund.get("refundId"):
        return []
    code = currency(refund.get("currencyCode"), "refund.currencyCode")
    failed = status == "CANCELED"
    return [
        Notification(
            provider="payu",
            provider_event_id=f"refund_failed:{refund['refundId']}" if failed else f"refund:{refund['refundId']}",
            kind="refund_failed" if failed else "refunded",
            registration_id=registration_of(body.get("extOrderId")),
            reference=str(body["orderId"]),
            amount=minor_units(refund.get("amount"), code, "refund.amount", digit_strings=True),
            raw_type=f"refund notification {status}",
        )
    ]


#: ``extOrderId`` of a registration's later orders: ``{registration id}~{n}``
#: (PayU refuses a second order under one ``extOrderId``).
_EXT_SEPARATOR = "~"
#: At most this many orders per registration (a bound on replacing lost ones).
MAX_ORDERS = 5


def registration_of(ext_order_id: object) -> str | None:
    """The registration an ``extOrderId`` names (``rid`` or ``rid~n``)."""
    if not isinstance(ext_order_id, str) or not ext_order_id:
        return None
    return ext_order_id.partition(_EXT_SEPARATOR)[0]


def _validity(req: CheckoutRequest) -> dict[str, str]:
    """``validityTime``: seconds the order stays payable (PayU's default is
    a day), aligned with the seat's hold (R20); at least a minute."""
    if req.expires_at is None or req.opened_at is None:
        return {}
    return {"validityTime": str(max(60, int((req.expires_at - req.opened_at).total_seconds())))}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _refusal(http_status: int, answer: JSON, what: str) -> LedgerError:
    status = answer.get("status") or {}
    code = status.get("statusCode") or f"HTTP {http_status}"
    desc = status.get("statusDesc") or ""
    if http_status in (401, 403):
        return ProviderCredentialsInvalid(
            f"PayU refused to {what} with these credentials ({code}): check pos_id",
            field="pos_id",
        )
    return ProviderRejectedRequest(f"PayU refused to {what}: {code} {desc}".strip())
