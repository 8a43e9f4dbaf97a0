"""Everything a payment provider, or a participant coming back from one, calls.

* ``POST /v1/webhooks/{stripe|payu|paypal}/{connection}`` -- notifications,
  verified on the *raw* body with the provider's own scheme.  A bad signature
  is a 400 ``invalid_signature`` and changes nothing in the ledger; the
  delivery is still kept in the inbox so forged or stale requests are visible.
* ``GET /v1/webhooks/{provider}/{connection}/return`` (and ``/cancel``) --
  where the provider sends the participant back.  We do not trust the URL:
  the checkout's status is fetched from the provider (and a PayPal approval is
  captured), then applied like any notification.
* ``POST /v1/registrations/{id}/checkout`` -- continue a checkout that a
  provider outage interrupted; returns the same session every time.

Endpoints stay thin: the rules live in :mod:`ledger.provider_notifications`,
:mod:`ledger.registration_desk` and :mod:`ledger.payment_intake`.  Webhook answers are quick 2xx once facts are
claimed; a 5xx (provider outage during verification or capture) asks the
provider to deliver again, which is harmless (facts are de-duplicated).
"""

from __future__ import annotations

from typing import Any

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import EXCLUDE, Schema, fields

from api.context import current_ledger
from api.responses import respond
from api.schemas import CheckoutSchema, MoneySchema
from ledger.domain.registration import Registration

blp = Blueprint("webhooks", __name__, url_prefix="/v1", description="Payment provider notifications and returns")


class WebhookFactSchema(Schema):
    id = fields.String(metadata={"description": "the provider's event id"})
    outcome = fields.String(metadata={"description": "what the ledger did with it", "example": "payment_recorded"})


class WebhookAnswerSchema(Schema):
    received = fields.Integer(metadata={"description": "notifications found in the body"})
    facts = fields.List(fields.Nested(WebhookFactSchema))


class ReturnQuerySchema(Schema):
    class Meta:
        unknown = EXCLUDE  # providers append their own parameters (PayerID, error …)

    registration_id = fields.String(required=True, metadata={"description": "our registration id"})
    session_id = fields.String(load_default=None, metadata={"description": "Stripe fills {CHECKOUT_SESSION_ID}"})
    token = fields.String(load_default=None, metadata={"description": "PayPal appends the order id"})


class CheckoutAnswerSchema(Schema):
    id = fields.String(metadata={"description": "registration id"})
    status = fields.String(metadata={"description": "the registration's status"})
    checkout = fields.Nested(CheckoutSchema)


class ReturnAnswerSchema(Schema):
    id = fields.String(metadata={"description": "registration id"})
    status = fields.String(metadata={"description": "the registration's status"})
    paid = fields.Nested(MoneySchema)
    checkout = fields.Nested(CheckoutSchema, allow_none=True, metadata={"description": "null before a checkout"})


@blp.route("/webhooks/<provider>/<connection_id>")
class Webhook(MethodView):
    @blp.response(200, WebhookAnswerSchema)
    def post(self, provider: str, connection_id: str) -> Any:
        """A provider notification (Stripe-Signature, OpenPayu-Signature,
        PayPal transmission headers), verified on the raw body."""
        received = current_ledger().notifications.receive(
            provider, connection_id, dict(request.headers), request.get_data(cache=True)
        )
        return respond(
            WebhookAnswerSchema,
            {
                "received": received.notifications,
                "facts": [{"id": r.provider_event_id, "outcome": r.outcome} for r in received.results],
            }
        )


def _returned(provider: str, connection_id: str, args: dict[str, Any]) -> Any:
    """Ask the provider where the checkout stands and apply the answer."""
    registration = current_ledger().notifications.participant_returned(
        provider, connection_id, args["registration_id"], url_reference=args.get("session_id") or args.get("token"),
    )
    return respond(
        ReturnAnswerSchema,
        {
            "id": str(registration.id),
            "status": registration.status,
            "paid": registration.money(registration.paid_minor).as_dict(),
            "checkout": _public_checkout(registration),
        },
        version=registration.version,
    )


def _public_checkout(registration: Registration) -> dict[str, Any] | None:
    if not registration.checkout:
        return None
    return {"provider": registration.checkout["provider"], "url": registration.checkout["url"]}


@blp.route("/webhooks/<provider>/<connection_id>/return")
class ParticipantReturn(MethodView):
    @blp.arguments(ReturnQuerySchema, location="query")
    @blp.response(200, ReturnAnswerSchema)
    def get(self, args: dict[str, Any], provider: str, connection_id: str) -> Any:
        """The participant is back from the provider: confirm the payment
        with the provider (Stripe session, PayU order) or capture the
        approved PayPal order."""
        return _returned(provider, connection_id, args)


@blp.route("/webhooks/<provider>/<connection_id>/cancel")
class ParticipantCancel(MethodView):
    @blp.arguments(ReturnQuerySchema, location="query")
    @blp.response(200, ReturnAnswerSchema)
    def get(self, args: dict[str, Any], provider: str, connection_id: str) -> Any:
        """The participant left the provider's page.  Nothing is failed here:
        the session stays payable until the provider says it expired."""
        return _returned(provider, connection_id, args)


@blp.route("/registrations/<registration_id>/checkout")
class RetryCheckout(MethodView):
    @blp.response(200, CheckoutAnswerSchema)
    def post(self, registration_id: str) -> Any:
        """Continue the checkout of a registration (public): the same
        provider session every time; 503 while the provider is down."""
        registration, checkout = current_ledger().registrations.continue_checkout(registration_id)
        return respond(
            CheckoutAnswerSchema,
            {"id": str(registration.id), "status": registration.status, "checkout": checkout},
            version=registration.version,
        )
