"""Fee reports (R16-R18): ``GET /v1/reports/fees`` — per organizer, currency,
period and fee policy: tickets, gross, refunds, money owed back, net and the 5%
service fee, with per-currency totals that are exact sums of the rows.
``Accept: text/csv`` gives CSV.  Organizers get their own figures; finance gets
everyone's (or ``?organizer=``)."""

from __future__ import annotations

from typing import Any

from flask import Response, g
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import EXCLUDE, Schema, fields, validate

from api.auth import authenticated
from api.blueprints.books import AS_OF_FIELD, AsOfSchema, with_position
from api.blueprints.participants import wants_csv
from api.context import current_ledger
from api.responses import respond
from api.schemas import CurrencyCode
from ledger.fee_policy import FEE_V1, FEE_V2
from projections import fee_report

blp = Blueprint("reports", __name__, url_prefix="/v1", description="Fee reports (R16)")


class FeeQuerySchema(Schema):
    class Meta:
        unknown = EXCLUDE

    from_ = fields.String(data_key="from", validate=validate.Length(min=1),
                          metadata={"format": "date", "description": "first UTC day, inclusive"})
    to = fields.String(validate=validate.Length(min=1),
                       metadata={"format": "date", "description": "last UTC day, inclusive"})
    currency = CurrencyCode()
    organizer = fields.String(validate=validate.Length(min=1), metadata={
        "format": "uuid", "description": "organizer id (finance); organizers see their own"})
    period = fields.String(metadata={"enum": list(fee_report.PERIODS), "description": "default month"})
    as_of = AS_OF_FIELD


class FeeTotalSchema(Schema):
    """A per-currency total: exact sums of the items (amounts are decimal strings)."""

    currency = fields.String()
    tickets = fields.Integer()
    payments = fields.Integer()
    gross = fields.String(metadata={"example": "490.00"})
    refunds = fields.String()
    refund_count = fields.Integer()
    refund_due = fields.String(metadata={
        "description": "change of the money owed back (R17) by these facts; summed over all periods, what is "
                       "owed now. gross - refunds - refund_due is the change of ticket money"})
    withdrawn = fields.String(metadata={
        "description": "money the payment provider took back (disputes, reversals) net of what it reinstated: "
                       "not revenue"})
    net = fields.String(metadata={"description": "gross minus refunds minus withdrawn"})
    fee_charged = fields.String()
    fee_reversed = fields.String()
    fee = fields.String(metadata={"description": "fee charged minus fee reversed by refunds"})


class FeeItemSchema(FeeTotalSchema):
    """One organizer, currency and period."""

    class Meta:  # the order they are sent in
        fields = ("organizer_id", "period", "fee_policy", *FeeTotalSchema._declared_fields)

    organizer_id = fields.String()
    period = fields.String(metadata={"example": "2026-11"})
    fee_policy = fields.String(metadata={
        "enum": [FEE_V1, FEE_V2],
        "description": "the policy that computed this line's fee figures: fee-v1 lines (first release) stay as "
                       "they were stored; new facts are fee-v2 (R18)"})


class FeeFiltersSchema(Schema):
    """The filters the report was computed with, after validation."""

    organizer = fields.String(allow_none=True)
    currency = fields.String(allow_none=True)
    from_ = fields.String(data_key="from", attribute="from", allow_none=True, metadata={"format": "date"})
    to = fields.String(allow_none=True, metadata={"format": "date"})
    period = fields.String(metadata={"enum": list(fee_report.PERIODS)})


class FeeReportSchema(Schema):
    items = fields.List(fields.Nested(FeeItemSchema))
    totals = fields.List(fields.Nested(FeeTotalSchema))
    filters = fields.Nested(FeeFiltersSchema)
    fee_policy = fields.String(metadata={"description": "how fees are computed"})
    as_of = fields.Nested(AsOfSchema, metadata={"description": "with ?as_of=: the point the figures reflect"})


@blp.route("/reports/fees")
class FeeReport(MethodView):
    @authenticated("organizer", "finance")
    @blp.arguments(FeeQuerySchema, location="query")
    @blp.response(200, FeeReportSchema)
    def get(self, args: dict[str, Any]) -> Any:
        """Service fees and money owed back per organizer, currency, period and
        fee policy (each fact by its own date), with per-currency totals."""
        report = fee_report.query(
            current_ledger().db, scope=g.principal.scope, organizer=args.get("organizer"),
            currency=args.get("currency"), date_from=args.get("from_"), date_to=args.get("to"),
            period=args.get("period"), as_of=args.get("as_of"),
        )
        if wants_csv():
            response = Response(fee_report.to_csv(report), mimetype="text/csv",
                                headers={"Content-Disposition": 'attachment; filename="fees.csv"'})
        else:
            response = respond(FeeReportSchema, report.as_dict())
        return with_position(response, report.view_position)
