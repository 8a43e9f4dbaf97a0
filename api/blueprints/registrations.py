"""Registrations: the public sign-up, and the organizer's decisions on each one
(payments seen outside webhooks, confirm, reject, resend, refunds)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from uuid import UUID

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import authenticated
from api.context import current_ledger
from api.idempotency import derived_id
from api.responses import if_match, respond, respond_text, serialize
from api.schemas import (
    PaymentSchema,
    ReasonSchema,
    RefundSchema,
    RegistrationCreatedSchema,
    RegistrationCreateSchema,
    RegistrationSchema,
    money_from,
)
from ledger.domain.registration import Registration

if TYPE_CHECKING:
    from ledger.registration_desk import RegistrationDesk

blp = Blueprint("registrations", __name__, url_prefix="/v1", description="Registrations")

#: The sign-up's body schema: one instance (webargs would build one per request),
#: also loaded by ``api.registration_fast_path``.
CREATE_SCHEMA = RegistrationCreateSchema()


@blp.route("/events/<event_id>/registrations")
class Registrations(MethodView):
    @blp.arguments(CREATE_SCHEMA)
    @blp.response(201, RegistrationCreatedSchema)
    @blp.alt_response(200, schema=RegistrationCreatedSchema, description=(
        "This e-mail (trimmed, any case) already has a registration on this event: that registration, "
        "with its checkout while unpaid; nothing new is recorded"))
    def post(self, body: dict[str, Any], event_id: str) -> Any:
        """Register for a paid event (public).  Holds a seat while the checkout is
        open (R9) and answers with where to pay.  One registration per e-mail
        and event: the same address again gets the first registration back
        (200), unless that one has ended."""
        text, status, version, location = register(
            current_ledger().registrations, event_id, body, derived_id("registration"))
        return respond_text(text, status, version=version, location=location)


def register(desk: RegistrationDesk, event_id: str, body: Mapping[str, Any],
             new_id: UUID | None) -> tuple[str, int, int, str]:
    """The public sign-up's answer as (JSON text, status, version, location):
    the desk's command and its :class:`RegistrationCreatedSchema` body.  One
    function for the view above and ``api.registration_fast_path``, so the
    two cannot drift apart; ``body`` is what ``RegistrationCreateSchema``
    loaded."""
    registration, checkout, created = desk.register(
        event_id, name=body["name"], email=body["email"], fields=body["fields_"],
        language=body["language"], new_id=new_id,
    )
    payload = {
        "id": str(registration.id),
        "version": registration.version,
        "event_id": registration.event_id,
        "status": registration.status,
        "price": registration.price.as_dict(),
        "checkout": checkout,
    }
    return (serialize(RegistrationCreatedSchema, payload), 201 if created else 200, registration.version,
            f"/v1/registrations/{registration.id}")


@blp.route("/registrations/<registration_id>")
class RegistrationResource(MethodView):
    @authenticated("organizer", "finance")
    @blp.response(200, RegistrationSchema)
    def get(self, registration_id: str) -> Any:
        """One registration, its status and money fields."""
        registration = current_ledger().service.registration(registration_id, g.principal.scope)
        return _respond(registration)


def _respond(registration: Registration, status: int = 200) -> Any:
    return respond(RegistrationSchema, registration.as_dict(), status, version=registration.version)


@blp.route("/registrations/<registration_id>/payments")
class Payments(MethodView):
    @authenticated("organizer")
    @blp.arguments(PaymentSchema)
    @blp.response(200, RegistrationSchema)
    def post(self, body: dict[str, Any], registration_id: str) -> Any:
        """Record a payment seen outside the webhooks (bank transfer, cash…).

        Any real payment is recorded, also when nothing is due (R17): money
        that pays for no ticket -- a second payment, a payment after the
        cancel or the rejection -- is owed back (``refund_due``)."""
        registration = current_ledger().service.record_payment(
            registration_id, amount=money_from(body["amount"], "amount.amount"),
            provider=body["provider"], method=body["method"], reference=body["reference"],
            scope=g.principal.scope, expected_version=if_match(),
        )
        return _respond(registration)


@blp.route("/registrations/<registration_id>/confirm")
class Confirm(MethodView):
    @authenticated("organizer")
    @blp.response(200, RegistrationSchema)
    def post(self, registration_id: str) -> Any:
        """Confirm a participant by hand (R14)."""
        registration = current_ledger().service.confirm(
            registration_id, scope=g.principal.scope, expected_version=if_match()
        )
        return _respond(registration)


@blp.route("/registrations/<registration_id>/reject")
class Reject(MethodView):
    @authenticated("organizer")
    @blp.arguments(ReasonSchema)
    @blp.response(200, RegistrationSchema)
    def post(self, body: dict[str, Any], registration_id: str) -> Any:
        """Reject a participant: notified; if paid, refund_due (R15)."""
        ledger = current_ledger()
        registration = ledger.service.reject(
            registration_id, reason=body["reason"], scope=g.principal.scope,
            expected_version=if_match(),
        )
        ledger.intake.closed_early([str(registration.id)])  # R20: its checkout ends too
        return _respond(registration)


@blp.route("/registrations/<registration_id>/resend-confirmation")
class Resend(MethodView):
    @authenticated("organizer")
    @blp.response(202, RegistrationSchema)
    def post(self, registration_id: str) -> Any:
        """Send the payment confirmation e-mail again (R12)."""
        registration = current_ledger().service.request_resend(
            registration_id, scope=g.principal.scope, expected_version=if_match()
        )
        return _respond(registration, 202)


@blp.route("/registrations/<registration_id>/refunds")
class Refunds(MethodView):
    @authenticated("organizer")
    @blp.arguments(RefundSchema)
    @blp.response(201, RegistrationSchema)
    def post(self, body: dict[str, Any], registration_id: str) -> Any:
        """Record a refund made at the provider (R15); never more than was paid.

        Taken from the money owed back first, then from the ticket (R17).
        ``ends_access`` (R19) says whether the participant loses the ticket;
        by default only a refund that leaves nothing paid ends access."""
        registration = current_ledger().service.record_refund(
            registration_id, amount=money_from(body["amount"], "amount.amount"),
            reference=body["reference"], ends_access=body["ends_access"], scope=g.principal.scope,
            expected_version=if_match(),
        )
        return _respond(registration, 201)
