"""The immutable event log for finance: ``GET /v1/ledger/events?after=&limit=``,
every stored event in global order, read from the event store itself."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import EXCLUDE, Schema, fields, validate

from api.auth import authenticated
from api.context import current_ledger
from api.responses import respond
from projections import audit_log
from projections.paging import MAX_LIMIT

blp = Blueprint("ledger_log", __name__, url_prefix="/v1", description="Event log (finance)")


class LogQuerySchema(Schema):
    class Meta:
        unknown = EXCLUDE

    after = fields.String(metadata={"pattern": "^[0-9]{0,18}$",
                                    "description": "a position: events after it (default 0)"})
    limit = fields.Integer(validate=validate.Range(min=1, max=MAX_LIMIT), metadata={"description": "default 100"})


class LogItemSchema(Schema):
    position = fields.Integer(metadata={
        "description": "global order: increasing in commit order; numbers may be skipped (a rolled-back write "
                       "consumes one)",
    })
    id = fields.String(metadata={"description": "stable event id (uuid5 of aggregate id and version)"})
    type = fields.String(metadata={"example": "PaymentRecorded"})
    aggregate_type = fields.String()
    aggregate_id = fields.String()
    aggregate_version = fields.Integer()
    organizer_id = fields.String()
    occurred_at = fields.String()
    schema_version = fields.Integer()
    actor = fields.String(metadata={
        "description": "who caused it: public, system, provider:<name>:<connection> or <role>:<token hash prefix>",
    })
    data = fields.Dict(metadata={"description": "the event's own fields (credentials redacted)"})
    hash = fields.String(allow_none=True, metadata={
        "description": "hex SHA-256 chain hash of this event (docs/audit.md); null until sealed, about a second",
    })


class LogPageSchema(Schema):
    items = fields.List(fields.Nested(LogItemSchema))
    next = fields.String(allow_none=True, metadata={"description": "position for ?after= when more may follow"})


@blp.route("/ledger/events")
class LedgerEvents(MethodView):
    @authenticated("finance")
    @blp.arguments(LogQuerySchema, location="query")
    @blp.response(200, LogPageSchema)
    def get(self, args: dict[str, Any]) -> Any:
        """Every event in global order (finance, read-only).  Secrets are never
        part of events; personal data is shown (auditors need it)."""
        page = audit_log.page(current_ledger(), after=args.get("after"), limit=args.get("limit"))
        return respond(LogPageSchema, page.as_dict())
