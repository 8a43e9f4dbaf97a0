"""Who paid (R14): ``GET /v1/events/{id}/participants`` — every registration of
an event with its status and money, as JSON pages or (``Accept: text/csv``) as
one CSV file.  Reads the ``projections`` view; organizers see their own events
only (another organizer's id is a 404), finance sees all."""

from __future__ import annotations

from typing import Any

from flask import Response, g, request, stream_with_context
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import EXCLUDE, Schema, fields, validate

from api.auth import authenticated
from api.context import current_ledger
from api.responses import respond
from api.schemas import MoneySchema
from projections import runner, who_paid_as_of, who_paid_query
from projections.as_of import AS_OF_PATTERN
from projections.paging import MAX_LIMIT

blp = Blueprint("participants", __name__, url_prefix="/v1", description="Who paid (R14)")


@blp.record_once
def _readiness_probe(state: Any) -> None:
    """``/readyz`` reports the views' lag (events committed, not yet projected)."""
    probes = state.app.extensions.setdefault("readiness_probes", {})
    probes.setdefault("projections", lambda ledger: runner.status(ledger).as_dict())


class ParticipantsQuerySchema(Schema):
    class Meta:
        unknown = EXCLUDE

    status = fields.String(metadata={
        "description": "only these statuses, comma-separated: " + ", ".join(who_paid_query.STATUSES)
    })
    after = fields.String(metadata={"description": "the `next` cursor of the previous page"})
    limit = fields.Integer(
        validate=validate.Range(min=1, max=MAX_LIMIT), metadata={"description": "page size, default 100"}
    )
    as_of = fields.String(metadata={
        "pattern": AS_OF_PATTERN,
        "description": "position:<n> or an RFC 3339 time: the participants as the ledger stood then (JSON only)",
        "example": "position:120"})


class ParticipantSchema(Schema):
    registration_id = fields.String()
    event_id = fields.String()
    organizer_id = fields.String()
    name = fields.String(allow_none=True, metadata={"description": "null once erased (R24)"})
    email = fields.String(allow_none=True, metadata={"description": "null once erased (R24)"})
    erased = fields.Boolean(metadata={"description": "the participant's personal data was erased (R24)"})
    status = fields.String(metadata={"enum": list(who_paid_query.STATUSES)})
    price = fields.Nested(MoneySchema)
    paid = fields.Nested(MoneySchema)
    refunded = fields.Nested(MoneySchema)
    refund_due = fields.Nested(MoneySchema, metadata={"description": "owed back to the participant (R15)"})
    fee = fields.Nested(MoneySchema, metadata={"description": "service fee charged minus reversed (R16)"})
    disputed = fields.Boolean(metadata={"description": "the payer disputed the payment (open or lost)"})
    withdrawn = fields.Nested(MoneySchema, metadata={
        "description": "taken back by the payment provider (disputes, reversals), net of what it reinstated"})
    reinstated = fields.Nested(MoneySchema, metadata={"description": "given back by the payment provider"})
    provider = fields.String()
    provider_reference = fields.String(allow_none=True)
    confirmed = fields.Boolean()
    closed_reason = fields.String(allow_none=True)
    close_note = fields.String(allow_none=True)
    payment_failures = fields.Integer()
    last_failure_reason = fields.String(allow_none=True)
    resends = fields.Integer()
    registered_at = fields.String()
    checkout_started_at = fields.String(allow_none=True)
    paid_at = fields.String(allow_none=True)
    confirmed_at = fields.String(allow_none=True)
    rejected_at = fields.String(allow_none=True)
    cancelled_at = fields.String(allow_none=True)
    refunded_at = fields.String(allow_none=True)
    payment_failed_at = fields.String(allow_none=True)
    updated_at = fields.String()
    seat = fields.String(metadata={
        "enum": ["sold", "held", "none"],
        "description": "the registration's seat now (R20): sold, held unpaid until seat_held_until, or none "
                       "(a lapsed hold holds nothing)"})
    seat_held_until = fields.String(allow_none=True, metadata={"format": "date-time"})


class SeatsSchema(Schema):
    """The event's seats now, sold and held apart (R9, R20)."""

    capacity = fields.Integer(metadata={"description": "the organizer's plan size now"})
    tickets_sold = fields.Integer()
    tickets_held = fields.Integer(metadata={"description": "held, unpaid, until their holds lapse"})
    tickets_left = fields.Integer()


class ParticipantsAsOfSchema(Schema):
    position = fields.Integer(metadata={"description": "the log position the figures reflect"})
    time = fields.String(allow_none=True, metadata={"format": "date-time"})


class ParticipantPageSchema(Schema):
    items = fields.List(fields.Nested(ParticipantSchema))
    next = fields.String(allow_none=True, metadata={"description": "cursor for ?after=, null on the last page"})
    as_of = fields.Nested(ParticipantsAsOfSchema, metadata={"description": "with ?as_of=: the point shown"})
    seats = fields.Nested(SeatsSchema)


def wants_csv() -> bool:
    """``Accept: text/csv`` (preferred over JSON) asks for the CSV form."""
    return request.accept_mimetypes.best_match(["application/json", "text/csv"]) == "text/csv"


@blp.route("/events/<event_id>/participants")
class Participants(MethodView):
    @authenticated("organizer", "finance")
    @blp.arguments(ParticipantsQuerySchema, location="query")
    @blp.response(200, ParticipantPageSchema)
    def get(self, args: dict[str, Any], event_id: str) -> Any:
        """Who paid: every registration with status, paid, refunded and refund due
        (R14, R15), in registration order.  `Accept: text/csv` returns all of
        them as CSV (pagination ignored)."""
        ledger = current_ledger()
        scope = g.principal.scope
        if wants_csv():
            lines = who_paid_query.csv_lines(ledger, event_id, scope=scope, status=args.get("status"))
            return Response(
                stream_with_context(lines), mimetype="text/csv",
                headers={"Content-Disposition": f'attachment; filename="participants-{event_id}.csv"'},
            )
        if args.get("as_of") is not None:
            past, point, position = who_paid_as_of.page(
                ledger, event_id, scope=scope, as_of=args["as_of"], status=args.get("status"),
                after=args.get("after"), limit=args.get("limit"))
            response = respond(ParticipantPageSchema, {**past.as_dict(), "as_of": point.as_dict()})
            response.headers["Ledger-Position"] = str(position)
            return response
        page = who_paid_query.page(
            ledger, event_id, scope=scope, status=args.get("status"), after=args.get("after"),
            limit=args.get("limit"),
        )
        # Seats are the event aggregate's (holds lapse with time, no event
        # marks it), shown beside each row: sold and held apart (R20).
        paid_event = ledger.service.event(event_id, scope)
        now = ledger.service.clock()
        body = page.as_dict()
        for item in body["items"]:
            item["seat"], item["seat_held_until"] = paid_event.seat_of(item["registration_id"], now)
        summary = paid_event.summary(ledger.service.capacity_of(paid_event), now)
        body["seats"] = {k: summary[k] for k in ("capacity", "tickets_sold", "tickets_held", "tickets_left")}
        response = respond(ParticipantPageSchema, body)
        response.headers["Ledger-Position"] = str(page.position)
        return response
