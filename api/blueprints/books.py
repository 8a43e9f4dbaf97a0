"""The books (R22): ``GET /v1/books/journal``, ``GET /v1/books/trial-balance``
and ``GET /v1/organizers/{org}/statement``.  Organizers see their own books;
finance (and admin) see everyone's.  Every answer carries ``Ledger-Position``:
the log position its figures reflect (docs/books.md)."""

from __future__ import annotations

from typing import Any

from flask import Response, g
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import EXCLUDE, Schema, fields, validate

from api.auth import authenticated
from api.blueprints.participants import wants_csv
from api.context import current_ledger
from api.responses import respond
from api.schemas import CURRENCIES
from projections import as_of, books_query
from projections.paging import MAX_LIMIT

blp = Blueprint("books", __name__, url_prefix="/v1", description="Books: journal, trial balance, statements (R22)")

POSITION_HEADER = "Ledger-Position"

_ORGANIZER = fields.String(validate=validate.Length(min=1), metadata={
    "format": "uuid", "description": "organizer id (finance); organizers see their own"})
_CURRENCY = fields.String(metadata={"enum": CURRENCIES, "example": "USD"})
AS_OF_FIELD = fields.String(metadata={
    "pattern": as_of.AS_OF_PATTERN,
    "description": "position:<n> or an RFC 3339 time: the answer as the ledger stood then",
    "example": "position:120"})


def with_position(response: Response, position: int) -> Response:
    response.headers[POSITION_HEADER] = str(position)
    return response


class AsOfSchema(Schema):
    position = fields.Integer(metadata={"description": "the log position the figures reflect"})
    time = fields.String(allow_none=True, metadata={
        "format": "date-time", "description": "the time asked for, or of the last money fact up to the position"})


class TrialBalanceQuerySchema(Schema):
    class Meta:
        unknown = EXCLUDE

    organizer = _ORGANIZER
    currency = _CURRENCY
    as_of = AS_OF_FIELD


class AccountBalanceSchema(Schema):
    account = fields.String(metadata={"example": "held:stripe"})
    organizer_id = fields.String()
    currency = fields.String()
    debit = fields.String(metadata={"example": "49.00", "description": "all debits up to the point asked"})
    credit = fields.String(metadata={"example": "0.00"})
    balance = fields.String(metadata={"description": "debit minus credit (negative: a credit balance)"})


class CurrencyTotalSchema(Schema):
    currency = fields.String()
    debit = fields.String()
    credit = fields.String()
    balanced = fields.Boolean(metadata={"description": "debit equals credit (always, R22)"})


class TrialBalanceSchema(Schema):
    as_of = fields.Nested(AsOfSchema)
    accounts = fields.List(fields.Nested(AccountBalanceSchema))
    totals = fields.List(fields.Nested(CurrencyTotalSchema))
    balanced = fields.Boolean()


class JournalQuerySchema(Schema):
    class Meta:
        unknown = EXCLUDE

    after = fields.String(metadata={"pattern": "^[0-9]{0,18}$", "description": "entries after this position"})
    limit = fields.Integer(validate=validate.Range(min=1, max=MAX_LIMIT), metadata={"description": "default 100"})
    organizer = _ORGANIZER
    account = fields.String(validate=validate.Length(min=1, max=60), metadata={
        "pattern": "^(held:[A-Za-z0-9_]{1,40}|refunds_paid|withdrawn|ticket_revenue|owed_back|fee_expense"
                   "|fee_payable)$",
        "example": "owed_back"})
    currency = _CURRENCY
    as_of = AS_OF_FIELD


class JournalLineSchema(Schema):
    account = fields.String()
    debit = fields.String()
    credit = fields.String()


class JournalEntrySchema(Schema):
    entry_id = fields.Integer(metadata={"description": "the entry's id: the log position that caused it"})
    position = fields.Integer()
    event_id = fields.String(metadata={"description": "the stored event (as in GET /v1/ledger/events)"})
    type = fields.String(metadata={"example": "PaymentRecorded"})
    organizer_id = fields.String()
    currency = fields.String()
    registration_id = fields.String()
    paid_event_id = fields.String(metadata={"description": "the paid event (webinar) the money was for"})
    occurred_at = fields.String()
    lines = fields.List(fields.Nested(JournalLineSchema))


class JournalPageSchema(Schema):
    items = fields.List(fields.Nested(JournalEntrySchema))
    next = fields.String(allow_none=True, metadata={"description": "position for ?after= when more may follow"})


class StatementQuerySchema(Schema):
    class Meta:
        unknown = EXCLUDE

    from_ = fields.String(data_key="from", validate=validate.Length(min=1),
                          metadata={"format": "date", "description": "first UTC day, inclusive"})
    to = fields.String(validate=validate.Length(min=1),
                       metadata={"format": "date", "description": "last UTC day, inclusive"})
    currency = _CURRENCY


class BalancePointSchema(Schema):
    day = fields.String(metadata={"format": "date"})
    balance = fields.String()


class StatementCurrencySchema(Schema):
    currency = fields.String()
    opening_balance = fields.String(metadata={"description": "ticket revenue minus service fee before the period"})
    received = fields.String(metadata={"description": "money received in the period"})
    refunds = fields.String(metadata={"description": "refunds paid out in the period"})
    withdrawn = fields.String(metadata={"description": "money taken back by providers in the period (disputes, "
                                                       "reversals), net of what they reinstated"})
    owed_back = fields.String(metadata={"description": "change of the money owed back to payers in the period"})
    sales = fields.String(metadata={
        "description": "ticket revenue of the period: received - refunds - withdrawn - owed_back"})
    fee = fields.String(metadata={"description": "service fee of the period (charged minus given back)"})
    closing_balance = fields.String(metadata={"description": "opening_balance + sales - fee"})
    held = fields.String(metadata={
        "description": "money held at the end (received minus refunds and withdrawn, all time)"})
    owed_back_total = fields.String(metadata={"description": "money owed back at the end"})
    balance_by_day = fields.List(fields.Nested(BalancePointSchema))


class StatementSchema(Schema):
    organizer_id = fields.String()
    from_ = fields.String(data_key="from", attribute="from", allow_none=True, metadata={"format": "date"})
    to = fields.String(allow_none=True, metadata={"format": "date"})
    currencies = fields.List(fields.Nested(StatementCurrencySchema))


@blp.route("/books/trial-balance")
class TrialBalance(MethodView):
    @authenticated("organizer", "finance")
    @blp.arguments(TrialBalanceQuerySchema, location="query")
    @blp.response(200, TrialBalanceSchema)
    def get(self, args: dict[str, Any]) -> Any:
        """Every account's debits, credits and balance, now or as of a point of
        the log; totals per currency, where debits equal credits."""
        found = books_query.trial_balance(
            current_ledger().db, scope=g.principal.scope, organizer=args.get("organizer"),
            currency=args.get("currency"), as_of=args.get("as_of"))
        return with_position(respond(TrialBalanceSchema, found.as_dict()), found.view_position)


@blp.route("/books/journal")
class Journal(MethodView):
    @authenticated("organizer", "finance")
    @blp.arguments(JournalQuerySchema, location="query")
    @blp.response(200, JournalPageSchema)
    def get(self, args: dict[str, Any]) -> Any:
        """Journal entries in log order with their lines, each caused by one event."""
        page = books_query.journal(
            current_ledger().db, scope=g.principal.scope, organizer=args.get("organizer"),
            account=args.get("account"), after=args.get("after"), limit=args.get("limit"),
            currency=args.get("currency"), as_of=args.get("as_of"))
        return with_position(respond(JournalPageSchema, page.as_dict()), page.view_position)


@blp.route("/organizers/<org>/statement")
class OrganizerStatement(MethodView):
    @authenticated("organizer", "finance")
    @blp.arguments(StatementQuerySchema, location="query")
    @blp.response(200, StatementSchema)
    def get(self, args: dict[str, Any], org: str) -> Any:
        """Opening balance, money received, refunds, owed back, sales, fee and
        closing balance per currency over UTC days; ``Accept: text/csv`` for CSV."""
        found = books_query.statement(
            current_ledger().db, org, scope=g.principal.scope, date_from=args.get("from_"),
            date_to=args.get("to"), currency=args.get("currency"))
        if wants_csv():
            response = Response("".join(books_query.statement_csv(found)), mimetype="text/csv",
                                headers={"Content-Disposition": 'attachment; filename="statement.csv"'})
        else:
            response = respond(StatementSchema, found.as_dict())
        return with_position(response, found.view_position)
