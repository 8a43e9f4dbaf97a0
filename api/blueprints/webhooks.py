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

Endpoints stay thin: the rules live in :mod:`ledger.checkout` and
:mod:`ledger.payment_intake`.  Webhook answers are quick 2xx once facts are
claimed; a 5xx (provider outage during verification or capture) asks the
provider to deliver again, which is harmless (facts are de-duplicated).
"""

from __future__ import annotations

import json
from typing import Any

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import EXCLUDE, Schema, fields

from api.context import current_ledger
from api.responses import json_response
from ledger.checkout import GATEWAY_PROVIDERS, CheckoutStarter, Connection, ProviderAccess
from ledger.domain.registration import Registration
from ledger.errors import InvalidSignature, LedgerError, NotFound, ProviderUnavailable
from ledger.payment_intake import PaymentIntake
from ledger.providers import inbox
from ledger.providers.base import ProviderRejectedRequest

blp = Blueprint("webhooks", __name__, url_prefix="/v1", description="Payment provider notifications and returns")


class MalformedNotification(LedgerError):
    code = "malformed_notification"
    status = 400
    title = "The notification body is not a JSON object"


class WebhookAnswerSchema(Schema):
    received = fields.Integer()
    facts = fields.List(fields.Dict())


class ReturnQuerySchema(Schema):
    class Meta:
        unknown = EXCLUDE  # providers append their own parameters (PayerID, error …)

    registration_id = fields.String(required=True, metadata={"description": "our registration id"})
    session_id = fields.String(load_default=None, metadata={"description": "Stripe fills {CHECKOUT_SESSION_ID}"})
    token = fields.String(load_default=None, metadata={"description": "PayPal appends the order id"})


class CheckoutAnswerSchema(Schema):
    class Meta:
        unknown = "include"

    id = fields.String()
    status = fields.String()
    checkout = fields.Dict(allow_none=True)


def _wired() -> tuple[ProviderAccess, PaymentIntake, CheckoutStarter]:
    """The provider services ``entrypoints.providers_wiring.install`` put on
    the ledger; without them no connection can be served (404, never 5xx)."""
    extras = current_ledger().extras
    access, intake, starter = (extras.get(k) for k in ("provider_access", "payment_intake", "checkout_starter"))
    if access is None or intake is None or starter is None:
        raise NotFound("payment providers are not wired in this process")
    return access, intake, starter


def _connection(access: ProviderAccess, provider: str, connection_id: str) -> Connection:
    if provider not in GATEWAY_PROVIDERS:
        raise NotFound(f"no webhook for provider {provider!r}")
    connection = access.connection(connection_id)
    if connection.provider != provider:
        raise NotFound(f"no {provider} connection {connection_id}")
    return connection


def _is_json_object(body: bytes) -> bool:
    try:
        return isinstance(json.loads(body), dict)
    except (ValueError, UnicodeDecodeError):
        return False


@blp.route("/webhooks/<provider>/<connection_id>")
class Webhook(MethodView):
    @blp.response(200, WebhookAnswerSchema)
    def post(self, provider: str, connection_id: str) -> Any:
        """A provider notification (Stripe-Signature, OpenPayu-Signature,
        PayPal transmission headers), verified on the raw body."""
        access, intake, _ = _wired()
        connection = _connection(access, provider, connection_id)
        body = request.get_data(cache=True)
        headers = dict(request.headers)
        db = access.db

        def keep(verification: str, detail: str | None = None, event_ids: tuple[str, ...] = ()) -> int:
            return inbox.record_delivery(
                db,
                provider=provider,
                connection_id=connection.id,
                headers=headers,
                body=body,
                verification=verification,
                detail=detail,
                event_ids=event_ids,
            )

        try:
            notifications = access.gateway(provider).parse_notification(
                access.credentials(connection.id), headers, body
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
        results = intake.receive(connection, notifications, source="webhook", inbox_id=inbox_id)
        inbox.mark_delivery_processed(db, inbox_id)
        return json_response(
            {
                "received": len(notifications),
                "facts": [{"id": r.provider_event_id, "outcome": r.outcome} for r in results],
            }
        )


def _returned(provider: str, connection_id: str, args: dict[str, Any]) -> Any:
    """Ask the provider where the checkout stands and apply the answer."""
    access, intake, _ = _wired()
    connection = _connection(access, provider, connection_id)
    ledger = current_ledger()
    registration = ledger.service.registration(args["registration_id"])
    if registration.organizer_id != connection.organizer_id or registration.provider != provider:
        raise NotFound(f"no registration {args['registration_id']}")
    reference, ours = _reference(access, registration, args)
    if reference is not None:
        try:
            found = access.gateway(provider).fetch_status(access.credentials(connection.id), reference)
        except ProviderRejectedRequest:
            if ours:
                raise
            found = None  # a made-up id in the URL: nothing to learn, not our error
        if found is not None:
            intake.receive(connection, [found], source="return")
        registration = ledger.service.registration(str(registration.id))
    return json_response(
        {
            "id": str(registration.id),
            "status": registration.status,
            "paid": registration.money(registration.paid_minor).as_dict(),
            "checkout": _public_checkout(registration),
        },
        version=registration.version,
    )


def _reference(access: ProviderAccess, registration: Registration, args: dict[str, Any]) -> tuple[str | None, bool]:
    """(reference, is it ours).  Our own record first; the provider's URL
    parameter only when a crash left us without one -- safe, because the
    fetched fact names its registration and is checked like any other."""
    row = inbox.find_checkout(access.db, str(registration.id))
    if row is not None:
        return row.reference, True
    if registration.checkout:
        return registration.checkout["reference"], True
    fallback = args.get("session_id") or args.get("token")
    return (str(fallback) if fallback and "{" not in fallback else None), False


def _public_checkout(registration: Registration) -> dict[str, Any] | None:
    if not registration.checkout:
        return None
    return {"provider": registration.checkout["provider"], "url": registration.checkout["url"]}


@blp.route("/webhooks/<provider>/<connection_id>/return")
class ParticipantReturn(MethodView):
    @blp.arguments(ReturnQuerySchema, location="query")
    @blp.response(200, CheckoutAnswerSchema)
    def get(self, args: dict[str, Any], provider: str, connection_id: str) -> Any:
        """The participant is back from the provider: confirm the payment
        with the provider (Stripe session, PayU order) or capture the
        approved PayPal order."""
        return _returned(provider, connection_id, args)


@blp.route("/webhooks/<provider>/<connection_id>/cancel")
class ParticipantCancel(MethodView):
    @blp.arguments(ReturnQuerySchema, location="query")
    @blp.response(200, CheckoutAnswerSchema)
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
        _, _, starter = _wired()
        registration = current_ledger().service.registration(registration_id)
        registration, checkout = starter.start(registration)
        return json_response(
            {"id": str(registration.id), "status": registration.status, "checkout": checkout},
            version=registration.version,
        )
