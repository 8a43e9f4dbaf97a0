"""A local Stripe API implementing exactly what ``StripeGateway`` uses.

Contract points mirrored from Stripe's API reference:

* ``application/x-www-form-urlencoded`` bodies with bracketed nesting
  (``metadata[registration_id]``, ``line_items[0][price]``); list filters in
  the query string the same way (``lookup_keys[0]``).
* ``Authorization: Bearer <key>``: unknown key -> 401; a restricted key
  without the permission for a resource -> 403, checked *before* parameters,
  so an empty POST from a permitted key is a 400 ``parameter_missing``.
* ``Idempotency-Key``: a successful answer is stored per key (and API key) and
  replayed byte for byte with ``Idempotent-Replayed: true``; the same key with
  other parameters -> 400 ``idempotency_error``.  Failed requests are not
  stored, as on Stripe.  :meth:`StripeContractServer.forget_idempotency_keys`
  simulates their 24 h expiry.
* Errors are ``{"error": {"type", "code", "message"}}``.
* Custom product ids (``resource_already_exists``) and unique price
  ``lookup_key`` s.
* Checkout Session ``expires_at`` (Unix seconds) between 30 minutes and 24
  hours after creation, else 400 ``param: expires_at``; without it a day.
  ``POST /v1/checkout/sessions/{id}/expire`` expires an *open* session and
  answers it; any other status -> 400 (docs.stripe.com/api/checkout/sessions/expire).
  :attr:`StripeContractServer.now` stands for Stripe's clock: a session past
  its ``expires_at`` reads ``expired`` and can no longer be completed.

"Dashboard" methods (:meth:`complete`, :meth:`expire`, :meth:`refund` ...)
change state the way a participant or organizer would, and :meth:`event`
plus :meth:`signed` / :meth:`deliver_event` send the matching webhook.
"""

from __future__ import annotations

import re
import secrets
import time
from typing import Any

from tests.contracts.http_stub import ContractServer, Request, Response, json_response
from tests.contracts.stripe_wire import (
    decode_form,
    fingerprint,
    missing,
    new_id,
    resource_of,
    stripe_error,
)
from tests.contracts.webhook_signing import SignedWebhook, Variant, stripe_signed

JSON = dict[str, Any]
FULL_ACCESS = frozenset({"products", "prices", "checkout_sessions"})


class StripeContractServer(ContractServer):
    """Stripe's v1 API for Products, Prices and Checkout Sessions."""

    def __init__(self, *, webhook_secret: str = "whsec_contract_test_secret") -> None:
        super().__init__()
        self.secret_key = "sk_test_contract_" + secrets.token_hex(8)
        self.webhook_secret = webhook_secret
        #: api key -> resources it may write (and read).
        self.keys: dict[str, frozenset[str]] = {self.secret_key: FULL_ACCESS}
        self.products: dict[str, JSON] = {}
        self.prices: dict[str, JSON] = {}
        self.sessions: dict[str, JSON] = {}
        self.payment_intents: dict[str, JSON] = {}
        self.charges: dict[str, JSON] = {}
        self.refunds: dict[str, JSON] = {}
        self.disputes: dict[str, JSON] = {}
        self._intent_metadata: dict[str, JSON] = {}
        #: Sessions expired through the API (not by their own ``expires_at``).
        self.expired_by_api: list[str] = []
        self._idempotency: dict[tuple[str, str], tuple[str, Response]] = {}
        self.route("GET", r"/v1/products", self._list_products)
        self.route("POST", r"/v1/products", self._create_product)
        self.route("GET", r"/v1/prices", self._list_prices)
        self.route("POST", r"/v1/prices", self._create_price)
        self.route("GET", r"/v1/checkout/sessions", self._list_sessions)
        self.route("POST", r"/v1/checkout/sessions", self._create_session)
        self.route("GET", r"/v1/checkout/sessions/([^/]+)", self._get_session)
        self.route("POST", r"/v1/checkout/sessions/([^/]+)/expire", self._expire_session)
        #: Stripe's clock (seconds); tests move it to let sessions lapse.
        self.clock_offset = 0.0

    def now(self) -> int:
        return int(time.time() + self.clock_offset)

    # -- keys and test controls ---------------------------------------------

    def restricted_key(self, *resources: str) -> str:
        """A new ``rk_test_`` key with write access to ``resources`` only
        (any of ``products``, ``prices``, ``checkout_sessions``)."""
        key = "rk_test_contract_" + secrets.token_hex(8)
        self.keys[key] = frozenset(resources)
        return key

    def credentials(self, api_key: str | None = None) -> dict[str, str]:
        return {"api_key": api_key or self.secret_key, "webhook_secret": self.webhook_secret}

    def forget_idempotency_keys(self) -> None:
        """Stripe prunes keys after 24 h; later retries execute afresh."""
        with self._lock:
            self._idempotency.clear()

    def outage(self, status: int) -> Response:
        return stripe_error(status, "An unknown error occurred", type_="api_error")

    def not_found(self, request: Request) -> Response:
        return stripe_error(404, f"Unrecognized request URL ({request.method}: {request.path}).")

    # -- dispatch: auth, permissions, idempotency ---------------------------

    def intercept(self, request: Request) -> Response | None:
        key = (request.header("Authorization") or "").removeprefix("Bearer ").strip()
        if key not in self.keys:
            masked = f"{key[:8]}****{key[-4:]}" if len(key) > 12 else "****"
            return stripe_error(401, f"Invalid API Key provided: {masked}", code="api_key_invalid")
        resource = resource_of(request.path)
        if resource and resource not in self.keys[key]:
            return stripe_error(
                403,
                f"The provided key '{key[:8]}***{key[-4:]}' does not have the required "
                "permissions for this endpoint on account 'acct_contract'. Having the "
                f"'rak_{resource}_write' permission would allow this request to continue.",
            )
        slot = self._idempotency_slot(request)
        stored = self._idempotency.get(slot) if slot else None
        if stored is None:
            return None
        if stored[0] != fingerprint(request):
            return stripe_error(
                400,
                "Keys for idempotent requests can only be used with the same parameters they were first used with.",
                type_="idempotency_error",
            )
        replay = stored[1]
        return Response(replay.status, replay.body, {**replay.headers, "Idempotent-Replayed": "true"})

    def after(self, request: Request, response: Response) -> None:
        slot = self._idempotency_slot(request)
        if slot and 200 <= response.status < 300:
            self._idempotency.setdefault(slot, (fingerprint(request), response))

    @staticmethod
    def _idempotency_slot(request: Request) -> tuple[str, str] | None:
        key = request.header("Idempotency-Key")
        if request.method != "POST" or not key:
            return None
        return (request.header("Authorization") or "", key)

    # -- products and prices ------------------------------------------------

    def _list_products(self, request: Request, _: re.Match[str]) -> Response:
        return self._list("/v1/products", list(self.products.values()), request)

    def _create_product(self, request: Request, _: re.Match[str]) -> Response:
        params = decode_form(request.form())
        if not params.get("name"):
            return missing("name")
        product_id = params.get("id") or new_id("prod")
        if product_id in self.products:
            return stripe_error(400, "Product already exists.", code="resource_already_exists")
        product = {
            "id": product_id,
            "object": "product",
            "name": params["name"],
            "active": True,
            "metadata": params.get("metadata", {}),
            "created": int(time.time()),
            "livemode": False,
        }
        self.products[product_id] = product
        return json_response(200, product)

    def _list_prices(self, request: Request, _: re.Match[str]) -> Response:
        query = decode_form(request.query_pairs())
        wanted = query.get("lookup_keys")
        found = [p for p in self.prices.values() if wanted is None or p["lookup_key"] in wanted]
        return self._list("/v1/prices", found, request)

    def _create_price(self, request: Request, _: re.Match[str]) -> Response:
        params = decode_form(request.form())
        for name in ("currency", "product", "unit_amount"):
            if not params.get(name):
                return missing(name)
        if params["product"] not in self.products:
            return stripe_error(
                400, f"No such product: '{params['product']}'", code="resource_missing", param="product"
            )
        lookup_key = params.get("lookup_key")
        taken = [p for p in self.prices.values() if lookup_key and p["lookup_key"] == lookup_key]
        if taken:
            return stripe_error(400, f"A price (`{taken[0]['id']}`) already uses that lookup key.", param="lookup_key")
        price = {
            "id": new_id("price"),
            "object": "price",
            "product": params["product"],
            "unit_amount": int(params["unit_amount"]),
            "currency": params["currency"],
            "lookup_key": lookup_key,
            "metadata": params.get("metadata", {}),
            "type": "one_time",
            "active": True,
            "livemode": False,
        }
        self.prices[price["id"]] = price
        return json_response(200, price)

    # -- checkout sessions --------------------------------------------------

    def _create_session(self, request: Request, _: re.Match[str]) -> Response:
        params = decode_form(request.form())
        for name in ("mode", "line_items"):
            if not params.get(name):
                return missing(name)
        total, currency = 0, None
        for item in params["line_items"]:
            price = self.prices.get(item.get("price", ""))
            if price is None:
                return stripe_error(
                    400,
                    f"No such price: '{item.get('price')}'",
                    code="resource_missing",
                    param="line_items[0][price]",
                )
            total += price["unit_amount"] * int(item.get("quantity", 1))
            currency = price["currency"]
        created = self.now()
        expires_at = int(params.get("expires_at") or created + 86400)
        if not created + 1800 <= expires_at <= created + 86400:
            return stripe_error(
                400,
                "The `expires_at` timestamp must be between 30 minutes and 24 hours from Checkout Session creation.",
                param="expires_at",
            )
        session_id = "cs_test_" + secrets.token_hex(16)
        session = {
            "id": session_id,
            "object": "checkout.session",
            "mode": params["mode"],
            "status": "open",
            "payment_status": "unpaid",
            "amount_total": total,
            "currency": currency,
            "success_url": params.get("success_url"),
            "cancel_url": params.get("cancel_url"),
            "client_reference_id": params.get("client_reference_id"),
            "customer_email": params.get("customer_email"),
            "metadata": params.get("metadata", {}),
            "payment_intent": None,
            "url": f"{self.base_url}/c/pay/{session_id}",
            "livemode": False,
            "created": created,
            "expires_at": expires_at,
        }
        self.sessions[session_id] = session
        intent_data = params.get("payment_intent_data", {})
        self._intent_metadata[session_id] = intent_data.get("metadata", {})
        return json_response(200, session)

    def _expire_session(self, _: Request, match: re.Match[str]) -> Response:
        session = self._lapse(self.sessions.get(match.group(1)))
        if session is None:
            return stripe_error(
                404, f"No such checkout.session: '{match.group(1)}'", code="resource_missing", param="session"
            )
        if session["status"] != "open":
            return stripe_error(
                400, f"Only Checkout Sessions with a status in [\"open\"] can be expired. This one is "
                f"{session['status']}.", param="session",
            )
        session["status"] = "expired"
        self.expired_by_api.append(session["id"])
        return json_response(200, session)

    def _lapse(self, session: JSON | None) -> JSON | None:
        """Stripe expires an open session at its ``expires_at`` by itself."""
        if session is not None and session["status"] == "open" and self.now() >= session["expires_at"]:
            session["status"] = "expired"
        return session

    def _get_session(self, _: Request, match: re.Match[str]) -> Response:
        session = self._lapse(self.sessions.get(match.group(1)))
        if session is None:
            return stripe_error(
                404, f"No such checkout.session: '{match.group(1)}'", code="resource_missing", param="session"
            )
        return json_response(200, session)

    def _list_sessions(self, request: Request, _: re.Match[str]) -> Response:
        query = decode_form(request.query_pairs())
        intent = query.get("payment_intent")
        found = [s for s in self.sessions.values() if intent is None or s["payment_intent"] == intent]
        return self._list("/v1/checkout/sessions", found, request)

    def _list(self, url: str, items: list[JSON], request: Request) -> Response:
        limit = int(decode_form(request.query_pairs()).get("limit", 10))
        return json_response(200, {"object": "list", "url": url, "has_more": len(items) > limit, "data": items[:limit]})

    # -- dashboard: what participants and organizers do ---------------------

    def complete(self, session_id: str, *, payment_status: str = "paid") -> JSON:
        """The participant pays; ``unpaid`` models a delayed method (SEPA)."""
        with self._lock:
            session = self.sessions[session_id]
            if self._lapse(session) and session["status"] != "open":
                raise ValueError(f"session {session_id} is {session['status']}: Stripe takes no payment on it")
            intent = self._intent(session, "succeeded" if payment_status == "paid" else "processing")
            session.update(status="complete", payment_status=payment_status, payment_intent=intent["id"])
            if payment_status == "paid":
                self._charge(intent)
            return dict(session)

    def settle_async(self, session_id: str, *, succeeded: bool) -> JSON:
        """The delayed method settles (or fails) after completion."""
        with self._lock:
            session = self.sessions[session_id]
            intent = self.payment_intents[session["payment_intent"]]
            if succeeded:
                intent["status"] = "succeeded"
                session["payment_status"] = "paid"
                self._charge(intent)
            else:
                intent["status"] = "requires_payment_method"
            return dict(session)

    def decline(self, session_id: str) -> JSON:
        """A card is declined; the session stays open.  Returns the intent."""
        with self._lock:
            session = self.sessions[session_id]
            intent = self._intent(session, "requires_payment_method")
            session["payment_intent"] = intent["id"]
            intent["last_payment_error"] = {"code": "card_declined", "type": "card_error"}
            return dict(intent)

    def expire(self, session_id: str) -> JSON:
        with self._lock:
            self.sessions[session_id]["status"] = "expired"
            return dict(self.sessions[session_id])

    def refund(self, session_id: str, amount: int | None = None, *, status: str = "succeeded") -> JSON:
        """The organizer refunds (part of) a paid session in the dashboard."""
        with self._lock:
            intent_id = self.sessions[session_id]["payment_intent"]
            charge = next(c for c in self.charges.values() if c["payment_intent"] == intent_id)
            value = amount if amount is not None else charge["amount"] - charge["amount_refunded"]
            refund = {
                "id": new_id("re"),
                "object": "refund",
                "amount": value,
                "currency": charge["currency"],
                "charge": charge["id"],
                "payment_intent": intent_id,
                "status": status,
                "metadata": {},
            }
            self.refunds[refund["id"]] = refund
            if status == "succeeded":
                charge["amount_refunded"] += value
                charge["refunded"] = charge["amount_refunded"] == charge["amount"]
            return dict(refund)

    def dispute(self, session_id: str, *, reason: str = "fraudulent") -> JSON:
        """The payer's bank disputes the session's charge (a Dispute object,
        docs.stripe.com/api/disputes/object); deliver it as
        ``charge.dispute.created`` and, as Stripe then takes the money,
        ``charge.dispute.funds_withdrawn``."""
        with self._lock:
            intent_id = self.sessions[session_id]["payment_intent"]
            charge = next(c for c in self.charges.values() if c["payment_intent"] == intent_id)
            found = {
                "id": new_id("dp"),
                "object": "dispute",
                "amount": charge["amount"],
                "currency": charge["currency"],
                "charge": charge["id"],
                "payment_intent": intent_id,
                "reason": reason,
                "status": "needs_response",
                "is_charge_refundable": False,
                "balance_transactions": [],
                "livemode": False,
                "metadata": {},
                "created": self.now(),
            }
            self.disputes[found["id"]] = found
            return dict(found)

    def close_dispute(self, dispute_id: str, status: str) -> JSON:
        """Stripe decides: ``won``, ``lost`` (or ``warning_closed``)."""
        with self._lock:
            self.disputes[dispute_id]["status"] = status
            return dict(self.disputes[dispute_id])

    def fail_refund(self, refund_id: str) -> JSON:
        """A refund Stripe reported succeeded fails later (e.g. the card was
        closed): the money returns to the organizer's Stripe balance."""
        with self._lock:
            refund = self.refunds[refund_id]
            refund.update(status="failed", failure_reason="expired_or_canceled_card")
            return dict(refund)

    def event(self, event_type: str, obj: JSON, previous: JSON | None = None) -> JSON:
        data: JSON = {"object": obj}
        if previous is not None:
            data["previous_attributes"] = previous
        return {
            "id": new_id("evt"),
            "object": "event",
            "api_version": "2025-01-27.acacia",
            "created": int(time.time()),
            "type": event_type,
            "data": data,
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
        }

    def signed(self, event: JSON, *, variant: Variant = "valid", timestamp: int | None = None) -> SignedWebhook:
        return stripe_signed(event, self.webhook_secret, timestamp=timestamp, variant=variant)

    def deliver_event(self, url: str, event: JSON, *, variant: Variant = "valid") -> int:
        headers, body = self.signed(event, variant=variant)
        return self.deliver(url, headers, body)

    def _intent(self, session: JSON, status: str) -> JSON:
        intent_id = session["payment_intent"] or new_id("pi")
        intent = self.payment_intents.setdefault(
            intent_id,
            {
                "id": intent_id,
                "object": "payment_intent",
                "amount": session["amount_total"],
                "currency": session["currency"],
                "metadata": dict(self._intent_metadata.get(session["id"], {})),
            },
        )
        intent["status"] = status
        return intent

    def _charge(self, intent: JSON) -> JSON:
        charge = {
            "id": new_id("ch"),
            "object": "charge",
            "amount": intent["amount"],
            "amount_refunded": 0,
            "currency": intent["currency"],
            "refunded": False,
            "payment_intent": intent["id"],
            "metadata": {},
            "paid": True,
        }
        self.charges[charge["id"]] = charge
        return charge
