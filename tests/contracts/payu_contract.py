"""A local PayU REST API v2.1 implementing exactly what ``PayuGateway`` uses.

Contract points mirrored from PayU's documentation:

* OAuth ``POST /pl/standard/user/oauth/authorize`` (form, ``client_credentials``)
  -> ``{"access_token", "token_type": "bearer", "expires_in", "grant_type"}``;
  bad credentials -> 401 ``{"error": "invalid_client", "error_description"}``.
* ``POST /api/v2_1/orders`` (JSON, Bearer) -> **302 Found** with a JSON body
  ``{"status": {"statusCode": "SUCCESS"}, "redirectUri", "orderId",
  "extOrderId"}`` (and the same URI in ``Location``); a repeated
  ``extOrderId`` on the POS -> 400 ``ERROR_ORDER_NOT_UNIQUE``; missing fields
  -> 400 ``ERROR_VALUE_MISSING``; a currency the POS does not take -> 400
  ``ERROR_VALUE_INVALID``; another POS -> 403 ``UNAUTHORIZED_REQUEST``.
* ``GET /api/v2_1/orders/{orderId}`` and ``GET /api/v2_1/orders/ext/{extOrderId}``
  -> ``{"orders": [...], "status": {...}}`` (no ``redirectUri``: PayU does not
  re-issue payment links); unknown -> 404 ``DATA_NOT_FOUND``.
* ``validityTime`` (seconds, a string of digits; PayU's default 86400) is
  kept on the order; ``DELETE /api/v2_1/orders/{orderId}`` cancels an order
  nobody paid (NEW, PENDING) -> 200 ``{"orderId", "extOrderId", "status":
  {"statusCode": "SUCCESS"}}`` and the order reads CANCELED; a COMPLETED or
  already CANCELED order -> 400 ``ERROR_ORDER_STATUS`` (documented at
  developers.payu.com, "Cancelling an order"); WAITING_FOR_CONFIRMATION too
  (the payer gets the money back).
* ``PUT /api/v2_1/orders/{orderId}/status`` with ``{"orderId", "orderStatus":
  "COMPLETED"}`` confirms a WAITING_FOR_CONFIRMATION order -> 200
  ``{"status": {"statusCode": "SUCCESS", "statusDesc": "Status was updated"}}``.
* Notifications signed ``OpenPayu-Signature`` with MD5 or SHA-256 of body +
  second key (see :mod:`tests.contracts.webhook_signing`).
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

from tests.contracts.http_stub import ContractServer, Request, Response, json_response
from tests.contracts.webhook_signing import SignedWebhook, Variant, payu_signed

JSON = dict[str, Any]
_REQUIRED = ("customerIp", "merchantPosId", "description", "currencyCode", "totalAmount", "products")


def _status(http: int, code: str, desc: str = "", **extra: str) -> Response:
    return json_response(http, {"status": {"statusCode": code, "statusDesc": desc, **extra}})


def _valid_ip(value: object) -> bool:
    """PayU wants the payer's address; 0.0.0.0 is refused by name."""
    try:
        return not ipaddress.ip_address(str(value)).is_unspecified
    except ValueError:
        return False


class PayuContractServer(ContractServer):
    """One PayU shop with one REST POS that takes PLN."""

    def __init__(self) -> None:
        super().__init__()
        self.shop_id = "shop_contract"
        self.pos_id = "412345"
        self.client_id = self.pos_id  # PayU's REST POS: client_id == pos id
        self.client_secret = secrets.token_hex(16)
        self.second_key = secrets.token_hex(16)  # 32 hex digits, like PayU's MD5 key
        self.currencies = frozenset({"PLN"})
        self.tokens: set[str] = set()
        self.orders: dict[str, JSON] = {}
        self.refunds: dict[str, JSON] = {}
        self.route("POST", r"/pl/standard/user/oauth/authorize", self._authorize)
        self.route("POST", r"/api/v2_1/orders", self._create_order)
        self.route("GET", r"/api/v2_1/orders/ext/([^/]+)", self._get_by_ext)
        self.route("GET", r"/api/v2_1/orders/([^/]+)", self._get_order)
        self.route("DELETE", r"/api/v2_1/orders/([^/]+)", self._cancel_order)
        self.route("PUT", r"/api/v2_1/orders/([^/]+)/status", self._update_status)
        #: Orders cancelled / confirmed through the API.
        self.cancelled_by_api: list[str] = []
        self.confirmed_by_api: list[str] = []

    def credentials(self, **overrides: str) -> dict[str, str]:
        creds = {
            "shop_id": self.shop_id,
            "pos_id": self.pos_id,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "second_key": self.second_key,
        }
        return {**creds, **overrides}

    def outage(self, status: int) -> Response:
        return _status(status, "ERROR_INTERNAL", "Injected failure")

    def not_found(self, request: Request) -> Response:
        return _status(404, "DATA_NOT_FOUND", f"No resource {request.path}")

    # -- API ------------------------------------------------------------------

    def _authorize(self, request: Request, _: re.Match[str]) -> Response:
        form = dict(request.form())
        if form.get("grant_type") != "client_credentials":
            return json_response(
                400, {"error": "unsupported_grant_type", "error_description": "Unsupported grant type"}
            )
        if (form.get("client_id"), form.get("client_secret")) != (self.client_id, self.client_secret):
            return json_response(401, {"error": "invalid_client", "error_description": "Bad client credentials"})
        token = str(uuid.uuid4())
        self.tokens.add(token)
        return json_response(
            200,
            {
                "access_token": token,
                "token_type": "bearer",
                "expires_in": 43199,
                "grant_type": "client_credentials",
            },
        )

    def _authorized(self, request: Request) -> bool:
        auth = request.header("Authorization") or ""
        return auth.startswith("Bearer ") and auth[7:] in self.tokens

    def _create_order(self, request: Request, _: re.Match[str]) -> Response:
        if not self._authorized(request):
            return _status(401, "UNAUTHORIZED", "Invalid or expired token")
        if "application/json" not in (request.header("Content-Type") or ""):
            return _status(400, "ERROR_SYNTAX", "Content-Type must be application/json")
        body = request.json()
        missing = [name for name in _REQUIRED if not body.get(name)]
        if missing:
            return _status(400, "ERROR_VALUE_MISSING", f"Missing {', '.join(missing)}")
        if str(body["merchantPosId"]) != self.pos_id:
            return _status(403, "UNAUTHORIZED_REQUEST", "POS does not belong to this client")
        if body["currencyCode"] not in self.currencies:
            return _status(
                400,
                "ERROR_VALUE_INVALID",
                "Currency not supported by the POS",
                codeLiteral="INVALID_CURRENCY",
            )
        if not str(body["totalAmount"]).isdigit() or not _valid_ip(body["customerIp"]):
            return _status(400, "ERROR_VALUE_INVALID", "Invalid totalAmount or customerIp")
        validity = str(body.get("validityTime", "86400"))
        if not validity.isdigit():
            return _status(400, "ERROR_VALUE_INVALID", "Invalid validityTime")
        ext = body.get("extOrderId")
        if ext and any(o["extOrderId"] == ext for o in self.orders.values()):
            return _status(400, "ERROR_ORDER_NOT_UNIQUE", "Order with this extOrderId exists")
        order_id = secrets.token_hex(13).upper()[:20] + "GUEST000P01"
        order = {
            "orderId": order_id,
            "extOrderId": ext,
            "orderCreateDate": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "notifyUrl": body.get("notifyUrl"),
            "customerIp": body["customerIp"],
            "merchantPosId": body["merchantPosId"],
            "description": body["description"],
            "currencyCode": body["currencyCode"],
            "totalAmount": str(body["totalAmount"]),
            "buyer": body.get("buyer", {}),
            "products": body["products"],
            "status": "NEW",
            "validityTime": validity,
        }
        self.orders[order_id] = order
        redirect = f"{self.base_url}/pay/?orderId={order_id}&token={secrets.token_urlsafe(16)}"
        return json_response(
            302,
            {
                "status": {"statusCode": "SUCCESS"},
                "redirectUri": redirect,
                "orderId": order_id,
                "extOrderId": ext,
            },
            headers={"Location": redirect},
        )

    def _get_order(self, request: Request, match: re.Match[str]) -> Response:
        return self._answer(request, self.orders.get(match.group(1)))

    def _cancel_order(self, request: Request, match: re.Match[str]) -> Response:
        if not self._authorized(request):
            return _status(401, "UNAUTHORIZED", "Invalid or expired token")
        order = self.orders.get(match.group(1))
        if order is None:
            return _status(404, "DATA_NOT_FOUND", "Could not find data for given criteria.")
        if order["status"] not in ("NEW", "PENDING", "WAITING_FOR_CONFIRMATION"):
            return _status(400, "ERROR_ORDER_STATUS", f"Order status {order['status']} does not allow cancelling")
        order["status"] = "CANCELED"
        self.cancelled_by_api.append(order["orderId"])
        return json_response(
            200,
            {"orderId": order["orderId"], "extOrderId": order["extOrderId"],
             "status": {"statusCode": "SUCCESS", "statusDesc": "Request processing successful"}},
        )

    def _update_status(self, request: Request, match: re.Match[str]) -> Response:
        """The shop confirms a WAITING_FOR_CONFIRMATION order (``orderStatus``
        COMPLETED); any other status cannot be confirmed."""
        if not self._authorized(request):
            return _status(401, "UNAUTHORIZED", "Invalid or expired token")
        order = self.orders.get(match.group(1))
        if order is None:
            return _status(404, "DATA_NOT_FOUND", "Could not find data for given criteria.")
        body = request.json()
        if body.get("orderId") != order["orderId"] or body.get("orderStatus") != "COMPLETED":
            return _status(400, "ERROR_VALUE_INVALID", "orderId and orderStatus COMPLETED are required")
        if order["status"] != "WAITING_FOR_CONFIRMATION":
            return _status(400, "ERROR_ORDER_STATUS", f"Order status {order['status']} cannot be confirmed")
        order["status"] = "COMPLETED"
        self.confirmed_by_api.append(order["orderId"])
        return _status(200, "SUCCESS", "Status was updated")

    def _get_by_ext(self, request: Request, match: re.Match[str]) -> Response:
        found = [o for o in self.orders.values() if o["extOrderId"] == match.group(1)]
        return self._answer(request, found[0] if found else None)

    def _answer(self, request: Request, order: JSON | None) -> Response:
        if not self._authorized(request):
            return _status(401, "UNAUTHORIZED", "Invalid or expired token")
        if order is None:
            return _status(404, "DATA_NOT_FOUND", "Could not find data for given criteria.")
        return json_response(
            200,
            {
                "orders": [order],
                "status": {"statusCode": "SUCCESS", "statusDesc": "Request processing successful"},
            },
        )

    # -- dashboard: what the payer and the organizer do -------------------------

    def set_status(self, order_id: str, status: str) -> JSON:
        """PENDING (paying), WAITING_FOR_CONFIRMATION, COMPLETED, CANCELED or REJECTED."""
        with self._lock:
            self.orders[order_id]["status"] = status
            return dict(self.orders[order_id])

    def refund(self, order_id: str, amount: int | None = None, *, status: str = "FINALIZED") -> JSON:
        with self._lock:
            order = self.orders[order_id]
            refund = {
                "refundId": str(secrets.randbelow(10**9)),
                "amount": str(amount if amount is not None else order["totalAmount"]),
                "currencyCode": order["currencyCode"],
                "status": status,
                "statusDateTime": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "reason": "refund",
                "reasonDescription": "on customer's request",
            }
            self.refunds[refund["refundId"]] = refund
            return dict(refund)

    def order_notification(self, order_id: str) -> JSON:
        return {
            "order": dict(self.orders[order_id]),
            "localReceiptDateTime": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "properties": [{"name": "PAYMENT_ID", "value": str(secrets.randbelow(10**9))}],
        }

    def refund_notification(self, order_id: str, refund: JSON) -> JSON:
        order = self.orders[order_id]
        return {"orderId": order_id, "extOrderId": order["extOrderId"], "refund": refund}

    def signed(self, payload: JSON, *, algorithm: str = "MD5", variant: Variant = "valid") -> SignedWebhook:
        return payu_signed(payload, self.second_key, algorithm=algorithm, variant=variant)

    def deliver_notification(
        self, url: str, payload: JSON, *, algorithm: str = "MD5", variant: Variant = "valid"
    ) -> int:
        headers, body = self.signed(payload, algorithm=algorithm, variant=variant)
        return self.deliver(url, headers, body)
