"""A local PayPal REST API implementing exactly what ``PaypalGateway`` uses.

Contract points mirrored from PayPal's documentation:

* ``POST /v1/oauth2/token`` with HTTP Basic ``client_id:secret`` and
  ``grant_type=client_credentials``; bad credentials -> 401 ``invalid_client``.
* ``POST /v2/checkout/orders``: ``PayPal-Request-Id`` makes it idempotent --
  the first answer is replayed for the same id (per app).  With
  ``payment_source.paypal`` the order is ``PAYER_ACTION_REQUIRED`` with a
  ``payer-action`` link, otherwise ``CREATED`` with an ``approve`` link.
  Amount ``value`` must be a decimal string with the currency's digits (422
  ``DECIMAL_PRECISION``).
* ``POST /v2/checkout/orders/{id}/capture`` (also ``PayPal-Request-Id``; the
  full order only with ``Prefer: return=representation``, else PayPal's minimal
  ``{id, status, links}``):
  422 ``ORDER_NOT_APPROVED`` before approval, ``ORDER_ALREADY_CAPTURED`` after.
* ``GET /v2/checkout/orders/{id}``, ``GET /v2/payments/captures/{id}``,
  ``GET /v1/notifications/webhooks/{id}``.
* ``POST /v1/notifications/verify-webhook-signature`` answers
  ``{"verification_status": "SUCCESS" | "FAILURE"}`` for deliveries this server
  signed (see :mod:`tests.contracts.webhook_signing`).
"""

from __future__ import annotations

import base64
import re
import secrets
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from tests.contracts.http_stub import ContractServer, Request, Response, json_response
from tests.contracts.webhook_signing import (
    SignedWebhook,
    Variant,
    canonical_json,
    paypal_signature,
    paypal_signed,
)

JSON = dict[str, Any]
_RECORDED = (re.compile(r"/v2/checkout/orders"), re.compile(r"/v2/checkout/orders/[^/]+/capture"))


def _problem(status: int, name: str, issue: str | None = None, message: str = "") -> Response:
    body: JSON = {"name": name, "message": message or name, "debug_id": secrets.token_hex(6)}
    if issue:
        body["details"] = [{"issue": issue, "description": issue.replace("_", " ").lower()}]
    return json_response(status, body)


def _new_id() -> str:
    return secrets.token_hex(9).upper()[:17]


class PaypalContractServer(ContractServer):
    """One REST app (client id/secret) with one webhook registered."""

    def __init__(self) -> None:
        super().__init__()
        self.client_id = "AContract" + secrets.token_hex(10)
        self.client_secret = "EContract" + secrets.token_hex(10)
        self.webhook_id = "WH-" + _new_id()
        #: The account that owns the REST app (paid when an order names no payee).
        self.app_merchant_id, self.app_email = "PLATFRM2345AB", "platform@contract.test"
        #: PayPal accounts that exist (merchant id -> e-mail): payees an order may name.
        self.merchants: dict[str, str] = {self.app_merchant_id: self.app_email}
        self.signing_key = secrets.token_bytes(32)
        self.tokens: set[str] = set()
        self.orders: dict[str, JSON] = {}
        self.captures: dict[str, JSON] = {}
        self.refunds: dict[str, JSON] = {}
        #: Status the next capture gets (COMPLETED, PENDING or DECLINED).
        self.next_capture_status = "COMPLETED"
        #: Answer captures minimally even when the full representation is asked
        #: for (a proxy or an API version that drops ``Prefer``).
        self.minimal_captures = False
        self._replays: dict[tuple[str, str], Response] = {}
        self.route("POST", r"/v1/oauth2/token", self._token)
        self.route("POST", r"/v2/checkout/orders", self._create_order)
        self.route("GET", r"/v2/checkout/orders/([^/]+)", self._get_order)
        self.route("POST", r"/v2/checkout/orders/([^/]+)/capture", self._capture)
        self.route("GET", r"/v2/payments/captures/([^/]+)", self._get_capture)
        self.route("GET", r"/v1/notifications/webhooks/([^/]+)", self._get_webhook)
        self.route("POST", r"/v1/notifications/verify-webhook-signature", self._verify)

    def merchant(self) -> tuple[str, str]:
        """A new PayPal business account (merchant id, e-mail) orders may pay."""
        merchant_id = "".join(secrets.choice("23456789ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(13))
        email = f"seller-{merchant_id.lower()}@contract.test"
        self.merchants[merchant_id] = email
        return merchant_id, email

    @property
    def cert_url(self) -> str:
        return f"{self.base_url}/v1/notifications/certs/CERT-contract"

    def credentials(self, **overrides: str) -> dict[str, str]:
        creds = {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "webhook_id": self.webhook_id,
        }
        return {**creds, **overrides}

    def outage(self, status: int) -> Response:
        return _problem(status, "INTERNAL_SERVER_ERROR", message="Injected failure")

    def not_found(self, request: Request) -> Response:
        return _problem(404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID")

    # -- auth and PayPal-Request-Id ------------------------------------------------

    def intercept(self, request: Request) -> Response | None:
        if request.path == "/v1/oauth2/token":
            return None
        auth = request.header("Authorization") or ""
        if not (auth.startswith("Bearer ") and auth[7:] in self.tokens):
            return _problem(401, "AUTHENTICATION_FAILURE", message="Authentication failed due to invalid credentials")
        slot = self._replay_slot(request)
        return self._replays.get(slot) if slot else None

    def after(self, request: Request, response: Response) -> None:
        slot = self._replay_slot(request)
        # Only successes are replayed: a refused capture (not yet approved)
        # must be retryable with the same id once the payer approves.
        if slot and 200 <= response.status < 300:
            self._replays.setdefault(slot, response)

    @staticmethod
    def _replay_slot(request: Request) -> tuple[str, str] | None:
        """Request ids belong to the app, not to one access token."""
        request_id = request.header("PayPal-Request-Id")
        if request.method != "POST" or not request_id:
            return None
        if not any(p.fullmatch(request.path) for p in _RECORDED):
            return None
        return (request.path, request_id)

    def _token(self, request: Request, _: re.Match[str]) -> Response:
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if request.header("Authorization") != f"Basic {expected}":
            return json_response(401, {"error": "invalid_client", "error_description": "Client Authentication failed"})
        if dict(request.form()).get("grant_type") != "client_credentials":
            return json_response(400, {"error": "unsupported_grant_type", "error_description": "Grant Type is NULL"})
        token = "A21AA" + secrets.token_urlsafe(24)
        self.tokens.add(token)
        return json_response(
            200,
            {
                "scope": "https://uri.paypal.com/services/payments/payment",
                "access_token": token,
                "token_type": "Bearer",
                "app_id": "APP-CONTRACT",
                "expires_in": 32400,
                "nonce": secrets.token_hex(8),
            },
        )

    # -- orders, captures, webhooks ------------------------------------------------

    def _create_order(self, request: Request, _: re.Match[str]) -> Response:
        body = request.json() or {}
        units = body.get("purchase_units") or []
        if body.get("intent") not in ("CAPTURE", "AUTHORIZE") or not units:
            return _problem(400, "INVALID_REQUEST", "MISSING_REQUIRED_PARAMETER")
        amount = units[0].get("amount") or {}
        value = amount.get("value")
        if not isinstance(value, str) or not amount.get("currency_code"):
            return _problem(400, "INVALID_REQUEST", "INVALID_PARAMETER_SYNTAX")
        try:
            exponent = Decimal(value).as_tuple().exponent
        except InvalidOperation:
            return _problem(400, "INVALID_REQUEST", "INVALID_PARAMETER_SYNTAX")
        if not isinstance(exponent, int) or exponent < -2:
            return _problem(422, "UNPROCESSABLE_ENTITY", "DECIMAL_PRECISION")
        payee = self._payee(units[0].get("payee"))
        if payee is None:
            return _problem(422, "UNPROCESSABLE_ENTITY", "PAYEE_ACCOUNT_INVALID",
                            "Payee account specified is invalid. Please check the payee.email_address or "
                            "payee.merchant_id specified and try again.")
        order_id = _new_id()
        paypal_source = (body.get("payment_source") or {}).get("paypal")
        rel = "payer-action" if paypal_source is not None else "approve"
        order = {
            "id": order_id,
            "intent": body["intent"],
            "status": "PAYER_ACTION_REQUIRED" if paypal_source is not None else "CREATED",
            "purchase_units": [{**{k: v for k, v in units[0].items() if k != "payments"}, "payee": payee}],
            "create_time": datetime.now(UTC).isoformat(timespec="seconds"),
            "links": [
                {"href": f"{self.base_url}/v2/checkout/orders/{order_id}", "rel": "self", "method": "GET"},
                {"href": f"{self.base_url}/checkoutnow?token={order_id}", "rel": rel, "method": "GET"},
            ],
        }
        self.orders[order_id] = order
        return json_response(201, {k: order[k] for k in ("id", "status", "links")})

    def _payee(self, given: Any) -> JSON | None:
        """Orders v2 ``purchase_units[].payee``: absent, the app's own account
        is paid; else ``merchant_id`` (13 characters of 2-9A-HJ-NP-Z) or
        ``email_address`` of an account PayPal knows (:attr:`merchants`).  The
        order answers with both fields of the account paid."""
        if given is None:
            return {"email_address": self.app_email, "merchant_id": self.app_merchant_id}
        if not isinstance(given, dict) or not given or set(given) - {"merchant_id", "email_address"}:
            return None
        merchant_id, email = given.get("merchant_id"), given.get("email_address")
        if merchant_id is not None and not re.fullmatch(r"[2-9A-HJ-NP-Z]{13}", str(merchant_id)):
            return None
        found = next((m for m, e in self.merchants.items() if m == merchant_id or e == email), None)
        if found is None or (merchant_id and email and self.merchants[found] != email):
            return None
        return {"email_address": self.merchants[found], "merchant_id": found}

    def _get_order(self, _: Request, match: re.Match[str]) -> Response:
        order = self.orders.get(match.group(1))
        if order is None:
            return _problem(404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID")
        return json_response(200, order)

    def _capture(self, request: Request, match: re.Match[str]) -> Response:
        order = self.orders.get(match.group(1))
        if order is None:
            return _problem(404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID")
        if order["status"] == "COMPLETED":
            return _problem(422, "UNPROCESSABLE_ENTITY", "ORDER_ALREADY_CAPTURED")
        if order["status"] != "APPROVED":
            return _problem(422, "UNPROCESSABLE_ENTITY", "ORDER_NOT_APPROVED")
        unit = order["purchase_units"][0]
        capture_id = _new_id()
        capture = {
            "id": capture_id,
            "status": self.next_capture_status,
            "amount": unit["amount"],
            "final_capture": True,
            "custom_id": unit.get("custom_id"),
            "supplementary_data": {"related_ids": {"order_id": order["id"]}},
            "create_time": datetime.now(UTC).isoformat(timespec="seconds"),
            "links": [
                {
                    "href": f"{self.base_url}/v2/payments/captures/{capture_id}",
                    "rel": "self",
                    "method": "GET",
                },
                {"href": f"{self.base_url}/v2/checkout/orders/{order['id']}", "rel": "up", "method": "GET"},
            ],
        }
        self.captures[capture_id] = capture
        unit["payments"] = {"captures": [capture]}
        order["status"] = "COMPLETED"
        # PayPal's default is ``Prefer: return=minimal``: id, status and links only.
        if self.minimal_captures or (request.header("Prefer") or "").strip() != "return=representation":
            return json_response(201, {"id": order["id"], "status": "COMPLETED", "links": order["links"][:1]})
        return json_response(
            201,
            {
                "id": order["id"],
                "status": "COMPLETED",
                "purchase_units": [{"reference_id": unit.get("reference_id"), "payments": {"captures": [capture]}}],
                "links": order["links"][:1],
            },
        )

    def _get_capture(self, _: Request, match: re.Match[str]) -> Response:
        capture = self.captures.get(match.group(1))
        if capture is None:
            return _problem(404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID")
        return json_response(200, capture)

    def _get_webhook(self, _: Request, match: re.Match[str]) -> Response:
        if match.group(1) != self.webhook_id:
            return _problem(404, "INVALID_RESOURCE_ID", message="Webhook id not found")
        return json_response(
            200, {"id": self.webhook_id, "url": "https://example.test/hook", "event_types": [{"name": "*"}]}
        )

    def _verify(self, request: Request, _: re.Match[str]) -> Response:
        body = request.json() or {}
        names = (
            "transmission_id",
            "transmission_time",
            "transmission_sig",
            "cert_url",
            "auth_algo",
            "webhook_id",
            "webhook_event",
        )
        if any(not body.get(name) for name in names):
            return _problem(400, "VALIDATION_ERROR", "MISSING_REQUIRED_PARAMETER")
        expected = paypal_signature(
            self.signing_key,
            body["transmission_id"],
            body["transmission_time"],
            body["webhook_id"],
            canonical_json(body["webhook_event"]),
        )
        ok = (
            body["webhook_id"] == self.webhook_id
            and body["auth_algo"] == "SHA256withRSA"
            and secrets.compare_digest(expected, body["transmission_sig"])
        )
        return json_response(200, {"verification_status": "SUCCESS" if ok else "FAILURE"})

    # -- dashboard: what payers and organizers do -------------------------------

    def forget_request_ids(self) -> None:
        """PayPal keeps request ids for a limited time; later retries run afresh."""
        with self._lock:
            self._replays.clear()

    def approve(self, order_id: str) -> JSON:
        """The payer approves the order on PayPal."""
        with self._lock:
            self.orders[order_id]["status"] = "APPROVED"
            return dict(self.orders[order_id])

    def void(self, order_id: str) -> JSON:
        with self._lock:
            self.orders[order_id]["status"] = "VOIDED"
            return dict(self.orders[order_id])

    def refund(self, capture_id: str, value: str | None = None) -> JSON:
        with self._lock:
            capture = self.captures[capture_id]
            amount = {
                "currency_code": capture["amount"]["currency_code"],
                "value": value or capture["amount"]["value"],
            }
            refund_id = _new_id()
            refund = {
                "id": refund_id,
                "status": "COMPLETED",
                "amount": amount,
                "create_time": datetime.now(UTC).isoformat(timespec="seconds"),
                "links": [
                    {
                        "href": f"{self.base_url}/v2/payments/refunds/{refund_id}",
                        "rel": "self",
                        "method": "GET",
                    },
                    {
                        "href": f"{self.base_url}/v2/payments/captures/{capture_id}",
                        "rel": "up",
                        "method": "GET",
                    },
                ],
            }
            self.refunds[refund_id] = refund
            return dict(refund)

    def reverse(self, capture_id: str) -> JSON:
        """PayPal reverses a capture (chargeback decided for the payer): the
        PAYMENT.CAPTURE.REVERSED resource is refund-shaped, linking ``up`` to
        the capture, its amount the money taken back."""
        with self._lock:
            capture = self.captures[capture_id]
            capture["status"] = "REVERSED"
            reversal_id = _new_id()
            return {
                "id": reversal_id,
                "status": "COMPLETED",
                "amount": dict(capture["amount"]),
                "create_time": datetime.now(UTC).isoformat(timespec="seconds"),
                "links": [{"href": f"{self.base_url}/v2/payments/captures/{capture_id}", "rel": "up",
                           "method": "GET"}],
            }

    def dispute(self, capture_id: str, *, outcome: str | None = None, dispute_id: str | None = None) -> JSON:
        """A Dispute resource (Customer Disputes v1): opened, or resolved with
        ``dispute_outcome.outcome_code`` (RESOLVED_BUYER_FAVOUR, RESOLVED_SELLER_FAVOUR …)."""
        capture = self.captures[capture_id]
        found: JSON = {
            "dispute_id": dispute_id or "PP-D-" + _new_id()[:8],
            "reason": "MERCHANDISE_OR_SERVICE_NOT_RECEIVED",
            "status": "RESOLVED" if outcome else "OPEN",
            "dispute_amount": dict(capture["amount"]),
            "disputed_transactions": [{"seller_transaction_id": capture_id}],
            "create_time": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        if outcome:
            found["dispute_outcome"] = {"outcome_code": outcome}
        return found

    def event(self, event_type: str, resource: JSON, resource_type: str = "capture") -> JSON:
        return {
            "id": "WH-" + _new_id(),
            "event_version": "1.0",
            "create_time": datetime.now(UTC).isoformat(timespec="seconds"),
            "resource_type": resource_type,
            "resource_version": "2.0",
            "event_type": event_type,
            "summary": event_type.replace(".", " ").lower(),
            "resource": resource,
            "links": [],
        }

    def signed(
        self, event: JSON, *, variant: Variant = "valid", transmission_time: datetime | None = None
    ) -> SignedWebhook:
        return paypal_signed(
            event,
            signing_key=self.signing_key,
            webhook_id=self.webhook_id,
            cert_url=self.cert_url,
            transmission_time=transmission_time,
            variant=variant,
        )

    def deliver_event(self, url: str, event: JSON, *, variant: Variant = "valid") -> int:
        headers, body = self.signed(event, variant=variant)
        return self.deliver(url, headers, body)
