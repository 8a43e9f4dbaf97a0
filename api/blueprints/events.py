"""Paid events: create, read, edit (never the price, R7), reschedule, cancel."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import g, request
from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import authenticated
from api.context import current_ledger
from api.idempotency import derived_id
from api.responses import if_match, respond
from api.schemas import (
    EventCreatedSchema,
    EventCreateSchema,
    EventPatchSchema,
    EventSchema,
    ReasonSchema,
    RescheduleSchema,
    price_from,
)
from ledger.domain.paid_event import PaidEvent
from ledger.errors import ValidationFailed
from projections import who_paid_query

blp = Blueprint("events", __name__, url_prefix="/v1", description="Paid events")


def event_json(paid_event: PaidEvent) -> dict[str, Any]:
    ledger = current_ledger()
    capacity = ledger.service.capacity_of(paid_event)
    return {
        "id": str(paid_event.id),
        "version": paid_event.version,
        "organizer_id": paid_event.organizer_id,
        "title": paid_event.title,
        "description": paid_event.description,
        "status": paid_event.status,
        "permanent": paid_event.permanent,
        "timezone": paid_event.timezone,
        "starts_at": paid_event.starts_at,
        "sessions": paid_event.sessions,
        "price": paid_event.price.as_dict(),
        "provider": paid_event.provider,
        "cancel_reason": paid_event.cancel_reason,
        "created_at": paid_event.created_on.isoformat(),
        **paid_event.summary(capacity, ledger.service.clock()),
        "hold_seconds": int(ledger.service.seat_hold_for(paid_event).total_seconds()),
        "money": who_paid_query.event_money(ledger, str(paid_event.id), paid_event.currency).as_dict(),
    }


@blp.route("/events")
class Events(MethodView):
    @authenticated("organizer")
    @blp.arguments(EventCreateSchema)
    @blp.response(201, EventCreatedSchema)
    def post(self, body: dict[str, Any]) -> Any:
        """Create a paid event: one price in one currency, fixed forever (R5–R7).
        With ``connect``, its provider is connected in the same request (R1–R4)."""
        principal = g.principal
        organizer_id = principal.organizer_id or request.args.get("organizer", "")
        if not organizer_id:
            raise ValidationFailed({"organizer": ["an admin names the organizer: ?organizer=ID"]})
        sessions: list[datetime] = [s["starts_at"] for s in body["sessions"] or []]
        if body["starts_at"] is not None:
            sessions = sessions or [body["starts_at"]]
        if not sessions:
            raise ValidationFailed({"starts_at": ["starts_at or sessions is required"]})
        price = price_from(body["price"])
        connection_id = derived_id("connection") if body["connect"] is not None else None
        paid_event, connected = current_ledger().connector.create_event(
            organizer_id, connect=body["connect"], title=body["title"], description=body["description"],
            sessions=sessions, timezone=body["timezone"], permanent=body["permanent"],
            price=price, provider=body["provider"], scope=principal.scope,
            new_id=derived_id("event"), connection_id=str(connection_id) if connection_id else None,
        )
        payload = event_json(paid_event)
        payload["connection"] = None
        if connected is not None:
            payload["connection"] = {"id": connected.connection_id, "provider": connected.provider,
                                     "masked": connected.masked}
            if connected.webhook_url is not None:
                payload["connection"]["webhook_url"] = connected.webhook_url
        return respond(EventCreatedSchema, payload, 201, version=paid_event.version,
                       location=f"/v1/events/{paid_event.id}")


@blp.route("/events/<event_id>")
class EventResource(MethodView):
    @authenticated("organizer", "finance")
    @blp.response(200, EventSchema)
    def get(self, event_id: str) -> Any:
        """The event with tickets sold and left, and its money: gross, refunded,
        owed back (refund_due, R17), fee (R18) and net."""
        paid_event = current_ledger().service.event(event_id, g.principal.scope)
        return respond(EventSchema, event_json(paid_event), version=paid_event.version)

    @authenticated("organizer")
    @blp.arguments(EventPatchSchema)
    @blp.response(200, EventSchema)
    def patch(self, body: dict[str, Any], event_id: str) -> Any:
        """Edit title or description.  Any price field is refused (R7)."""
        paid_event = current_ledger().service.edit_event(
            event_id, body, scope=g.principal.scope, expected_version=if_match()
        )
        return respond(EventSchema, event_json(paid_event), version=paid_event.version)


@blp.route("/events/<event_id>/reschedule")
class Reschedule(MethodView):
    @authenticated("organizer")
    @blp.arguments(RescheduleSchema)
    @blp.response(200, EventSchema)
    def post(self, body: dict[str, Any], event_id: str) -> Any:
        """Move the event (or one session); every participant is notified (R13)."""
        paid_event = current_ledger().service.reschedule(
            event_id, starts_at=body["starts_at"], session_id=body["session_id"],
            scope=g.principal.scope, expected_version=if_match(),
        )
        return respond(EventSchema, event_json(paid_event), version=paid_event.version)


@blp.route("/events/<event_id>/cancel")
class Cancel(MethodView):
    @authenticated("organizer")
    @blp.arguments(ReasonSchema)
    @blp.response(200, EventSchema)
    def post(self, body: dict[str, Any], event_id: str) -> Any:
        """Cancel: every participant notified; paid ones become refund_due (R15)."""
        ledger = current_ledger()
        paid_event = ledger.service.cancel_event(
            event_id, reason=body["reason"], scope=g.principal.scope, expected_version=if_match()
        )
        ledger.intake.closed_early(paid_event.registrations)  # R20: open checkouts end too
        return respond(EventSchema, event_json(paid_event), version=paid_event.version)
