"""Marshmallow schemas: the request and response shapes of API.md.

Response schemas are what is sent (``api.responses.respond`` dumps through
them): they declare every field an answer carries, in the order it is sent.

Amounts are taken as *raw* values here and parsed by ``ledger.money.Money``,
so a JSON number gets the precise ``amount_invalid`` refusal rather than a
generic type error, and the rule lives in one place.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from marshmallow import Schema, ValidationError, fields, validate, validates, validates_schema

from ledger.errors import AmountAboveLimit, PriceAboveLimit
from ledger.fee_policy import FEE_V1, FEE_V2
from ledger.money import MINOR_UNIT_DIGITS, Money
from ledger.pricing import MAX_PRICE_MAJOR, PROVIDERS
from projections.who_paid_query import STATUSES

STRICT = {"unknown": "raise"}


#: The times a request may name, in UTC.  Why a bound: ``9999-12-31T23:59:59-23:59``
#: is valid RFC 3339 but beyond ``datetime.max`` in UTC (and ``0001-01-01T00:00:00+23:59``
#: before ``datetime.min``), so converting it -- to store it, or to show it in
#: the event's time zone (up to 14 h either way) -- would fail deep inside a
#: command, a page or an e-mail.  A day of margin keeps every zone's local time
#: representable too.
EARLIEST_TIME = datetime(1, 1, 2, tzinfo=UTC)
LATEST_TIME = datetime(9999, 12, 30, tzinfo=UTC)


class AwareDateTime(fields.DateTime):
    """RFC 3339 with an explicit offset; naive times are refused, and so are
    times that cannot be shown in UTC and every time zone (see LATEST_TIME)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        result = super()._deserialize(value, attr, data, **kwargs)
        if result.tzinfo is None or result.utcoffset() is None:
            raise ValidationError("must include a UTC offset, e.g. 2026-12-01T18:00:00+01:00")
        try:
            in_utc = result.astimezone(UTC)
        except OverflowError:
            in_utc = None
        if in_utc is None or not EARLIEST_TIME <= in_utc <= LATEST_TIME:
            raise ValidationError(
                f"must lie between {EARLIEST_TIME.date()} and {LATEST_TIME.date()} in UTC"
            )
        return result


#: What ``Money.parse`` reads for a two-digit currency (R6's are all two-digit).
AMOUNT_PATTERN = r"^-?([0-9]+(\.[0-9]{0,2})?|\.[0-9]{1,2})$"
#: The currencies R6 accepts.
CURRENCIES = sorted(MINOR_UNIT_DIGITS)


class CurrencyCode(fields.String):
    """An ISO 4217 code in any case (``"usd"``, ``"Usd"``), read as upper case:
    ISO codes are letters whose case carries no meaning, and refusing ``usd`` as
    "not an accepted currency" told the organizer nothing useful.  Three letters
    that are not one of R6's currencies stay ``currency_not_supported``, with
    the accepted codes named (``ledger.errors.CurrencyNotSupported``)."""

    def __init__(self, **kwargs: Any) -> None:
        metadata = {
            "pattern": "^[A-Za-z]{3}$", "example": "USD",
            "description": "ISO 4217 code, any case (read as upper case); one of " + ", ".join(CURRENCIES),
            **kwargs.pop("metadata", {}),
        }
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if len(text) != 3 or not (text.isascii() and text.isalpha()):
            raise ValidationError("must be a three-letter ISO 4217 code such as USD")
        return text.upper()


class MoneySchema(Schema):
    amount = fields.Raw(
        required=True,
        metadata={"type": "string", "pattern": AMOUNT_PATTERN, "example": "49.00",
                  "description": "decimal string, major units"},
    )
    currency = CurrencyCode(required=True)


def money_from(data: dict[str, Any], field: str = "amount") -> Money:
    """An amount received (payment, refund): exact (R8) and within R21's bound,
    which ``Money.received`` enforces (``amount_above_limit``)."""
    return Money.received(data["amount"], data["currency"], field=field)


def price_from(data: dict[str, Any], field: str = "price.amount") -> Money:
    """A ticket price: an amount beyond even R21's bound is still a price above
    R6's limit, and is refused with that code (``price_above_limit``)."""
    try:
        return money_from(data, field)
    except AmountAboveLimit:
        limit = Money.of(MAX_PRICE_MAJOR[data["currency"]], data["currency"])
        raise PriceAboveLimit(f"the maximum price is {limit}", field="price") from None


class ProblemSchema(Schema):
    type = fields.String()
    title = fields.String()
    status = fields.Integer()
    detail = fields.String()
    code = fields.String()
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))


# --- organizers ------------------------------------------------------------------

def _contact_email(**kwargs: Any) -> fields.Email:
    return fields.Email(allow_none=True, validate=validate.Length(max=254), metadata={
        "description": "the organizer's contact e-mail (ASCII): disputes, reversals and failed refunds are "
                       "e-mailed there; null for none", "example": "billing@acme.example"}, **kwargs)


class OrganizerCreateSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    country = fields.String(required=True, validate=validate.Regexp(r"^[A-Z]{2}$"))
    plan_size = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=1_000_000))
    email = _contact_email(load_default=None)


class ContactChangeSchema(Schema):
    """``PUT /v1/organizers/{org}/contact``: the whole contact, replaced."""

    email = _contact_email(required=True)


class PlanChangeSchema(Schema):
    plan_size = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=1_000_000))


def _text(description: str, **kwargs: Any) -> fields.String:
    return fields.String(metadata={"description": description}, **kwargs)


def _time(description: str, *, example: str | None = None, **kwargs: Any) -> fields.String:
    """A time the API sends: already RFC 3339 text in UTC when it is dumped."""
    metadata = {"format": "date-time", "description": description}
    if example is not None:
        metadata["example"] = example
    return fields.String(metadata=metadata, **kwargs)


class OrganizerSchema(Schema):
    id = _text("organizer id")
    version = fields.Integer(metadata={"description": "aggregate version, also the ETag"})
    name = fields.String()
    country = fields.String(metadata={"description": "ISO 3166-1 alpha-2", "example": "PL"})
    plan_size = fields.Integer(metadata={"description": "seats the plan allows to sell (R9)"})
    email = fields.String(allow_none=True, metadata={
        "description": "the organizer's contact e-mail, null when none is set"})
    created_at = _time("when the organizer was registered")


class ProviderConnectSchema(Schema):
    """Credential fields depend on the provider (API.md); checked in the view."""

    class Meta:
        unknown = "include"

    provider = fields.String(required=True, validate=validate.OneOf(PROVIDERS))


class ConnectionSchema(Schema):
    id = _text("connection id, part of the webhook URL")
    provider = fields.String(metadata={"enum": list(PROVIDERS)})
    masked = fields.Dict(keys=fields.String(), values=fields.String(),
                         metadata={"description": "credential fields, secrets masked"})
    webhook_url = _text("where the provider must send notifications; only in the answer to "
                        "connecting a provider that sends them")


class ConnectionPageSchema(Schema):
    items = fields.List(fields.Nested(ConnectionSchema))
    next = fields.String(allow_none=True, metadata={"description": "always null: one page"})


class TokenCreateSchema(Schema):
    role = fields.String(required=True, validate=validate.OneOf(("admin", "finance", "organizer")))
    organizer_id = fields.String(load_default=None)
    label = fields.String(load_default="", validate=validate.Length(max=200))


class TokenSchema(Schema):
    token = _text("the bearer token: shown this once, only its hash is kept")
    role = fields.String(metadata={"enum": ["admin", "finance", "organizer"]})
    organizer_id = fields.String(allow_none=True, metadata={"description": "for an organizer token"})


# --- events ------------------------------------------------------------------------

class SessionSchema(Schema):
    starts_at = AwareDateTime(required=True)


class EventCreateSchema(Schema):
    title = fields.String(required=True, validate=validate.Length(min=1, max=300))
    description = fields.String(load_default="", validate=validate.Length(max=10_000))
    starts_at = AwareDateTime(load_default=None)
    sessions = fields.List(fields.Nested(SessionSchema), load_default=None, validate=validate.Length(max=500))
    permanent = fields.Boolean(load_default=False)
    timezone = fields.String(load_default="UTC", metadata={"example": "Europe/Warsaw"})
    price = fields.Nested(MoneySchema, required=True)
    provider = fields.String(required=True, validate=validate.OneOf(PROVIDERS))
    connect = fields.Nested(ProviderConnectSchema, load_default=None, metadata={
        "description": "connect the event's provider in the same request: a body of POST "
                       "/v1/organizers/{org}/providers (its `provider` may be left out). Checked with the "
                       "event's own rules first; a connection the provider refuses creates no event"})

    @validates("timezone")
    def _valid_zone(self, value: str, **_: Any) -> None:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValidationError("unknown IANA time zone") from exc


class EventPatchSchema(Schema):
    class Meta:
        unknown = "include"  # so that a `price` key reaches the R7 check

    title = fields.String(validate=validate.Length(min=1, max=300))
    description = fields.String(validate=validate.Length(max=10_000))


class RescheduleSchema(Schema):
    starts_at = AwareDateTime(required=True)
    session_id = fields.String(load_default=None)


class ReasonSchema(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=2000))


class EventSessionSchema(Schema):
    id = fields.String(metadata={"example": "s1"})
    starts_at = _time("in UTC", example="2026-12-01T17:00:00+00:00")


class EventMoneySchema(Schema):
    """R17, R18: every amount an event received, and where it stands."""

    gross = fields.Nested(MoneySchema, metadata={"description": "every payment received"})
    refunded = fields.Nested(MoneySchema, metadata={"description": "every refund recorded"})
    refund_due = fields.Nested(MoneySchema, metadata={
        "description": "owed back to payers (R17): money that pays for no ticket held, until refunded"})
    fee = fields.Nested(MoneySchema, metadata={
        "description": "service fee still charged (R18: on ticket money only)"})
    withdrawn = fields.Nested(MoneySchema, metadata={
        "description": "taken back by the payment provider (disputes, reversals), net of what it reinstated"})
    net = fields.Nested(MoneySchema, metadata={
        "description": "gross minus refunded minus withdrawn (refund_due is part of it)"})


class EventSchema(Schema):
    id = _text("event id")
    version = fields.Integer(metadata={"description": "aggregate version, also the ETag"})
    organizer_id = fields.String()
    title = fields.String()
    description = fields.String()
    status = fields.String(metadata={"enum": ["scheduled", "cancelled"]})
    permanent = fields.Boolean(metadata={"description": "paid once, every session included (R10)"})
    timezone = fields.String(metadata={"example": "Europe/Warsaw"})
    starts_at = _time("the first session's start, in UTC")
    sessions = fields.List(fields.Nested(EventSessionSchema))
    price = fields.Nested(MoneySchema, metadata={"description": "fixed forever (R7)"})
    provider = fields.String(metadata={"enum": list(PROVIDERS)})
    cancel_reason = fields.String(allow_none=True)
    created_at = _time("when the event was created")
    tickets_sold = fields.Integer()
    tickets_held = fields.Integer(metadata={"description": "seats held, unpaid, by open checkouts and offline "
                                                           "registrations until their holds expire"})
    tickets_left = fields.Integer(metadata={"description": "capacity minus sold minus held; 0 unless scheduled (R9)"})
    capacity = fields.Integer(metadata={"description": "seats the organizer's plan leaves for it (R9)"})
    hold_seconds = fields.Integer(metadata={"description": "how long a new registration holds a seat: the open "
                                                           "checkout's hold, or the offline payment's"})
    money = fields.Nested(EventMoneySchema, metadata={
        "description": "the event's money, summed over its registrations from the who-paid view (as fresh as "
                       "GET /v1/events/{id}/participants): gross - refunded - refund_due is what pays for "
                       "tickets held"})


# --- registrations -----------------------------------------------------------------

def _at_most_30_fields(value: dict[str, str]) -> None:
    """At most 30 custom fields (documented as ``maxProperties``, which
    ``validate.Length`` on a dict would wrongly document as ``maxLength``)."""
    if len(value) > 30:
        raise ValidationError("Longer than maximum length 30.")



class EventCreatedSchema(EventSchema):
    """The answer to creating an event: the event, and the connection made
    with it (``connect``), or null."""

    connection = fields.Nested(ConnectionSchema, allow_none=True, metadata={
        "description": "the provider connection made by `connect` in this request, or null"})

class RegistrationCreateSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    email = fields.Email(required=True, validate=validate.Length(max=254))
    fields_ = fields.Dict(
        data_key="fields", keys=fields.String(validate=validate.Length(max=100)),
        values=fields.String(validate=validate.Length(max=2000)), load_default=dict,
        validate=_at_most_30_fields, metadata={"maxProperties": 30},
    )
    language = fields.String(load_default=None, validate=validate.OneOf(("en", "pl")))


class PaymentSchema(Schema):
    """Any real payment is recorded (R17); what pays for no ticket is owed back."""

    amount = fields.Nested(MoneySchema, required=True)
    provider = fields.String(load_default="manual", validate=validate.OneOf(PROVIDERS), metadata={
        "description": "the connection kind the money came through; `manual` for money received outside "
                       "any provider"})
    method = fields.String(load_default=None, validate=validate.Length(min=1, max=100), metadata={
        "description": "how the money came, free text (e.g. \"bank transfer\", \"cash\")",
        "example": "bank transfer"})
    reference = fields.String(required=True, validate=validate.Length(min=1, max=200))


class RefundSchema(Schema):
    amount = fields.Nested(MoneySchema, required=True)
    reference = fields.String(required=True, validate=validate.Length(min=1, max=200))
    ends_access = fields.Boolean(load_default=None, allow_none=True, metadata={
        "description": "does the participant lose the ticket (R19)?  Default: only when the refund leaves "
                       "nothing paid; a partial (goodwill) refund keeps the ticket, its status and Join link"})


class CheckoutSchema(Schema):
    """Where the participant pays."""

    provider = fields.String(metadata={"enum": list(PROVIDERS)})
    url = fields.String(allow_none=True, metadata={"description": "the provider's payment page; null when "
                                                   "the provider has no checkout (manual)"})


class RegistrationCheckoutSchema(CheckoutSchema):
    reference = _text("the provider's id of the checkout session or order")


class RegistrationCreatedSchema(Schema):
    """The public answer to a registration: no personal or money details."""

    id = _text("registration id")
    version = fields.Integer(metadata={"description": "aggregate version, also the ETag"})
    event_id = fields.String()
    status = fields.String(metadata={"enum": list(STATUSES)})
    price = fields.Nested(MoneySchema)
    checkout = fields.Nested(CheckoutSchema)


class RecordedPaymentSchema(Schema):
    amount = fields.Nested(MoneySchema)
    provider = fields.String(metadata={"enum": list(PROVIDERS)})
    method = fields.String(allow_none=True, metadata={"description": "how the money came, when recorded by hand"})
    reference = _text("the provider's (or the organizer's) payment reference")
    fee = fields.Nested(MoneySchema, metadata={"description": "service fee this payment charged (R18)"})
    fee_policy = fields.String(metadata={"enum": [FEE_V1, FEE_V2]})


class RecordedRefundSchema(Schema):
    amount = fields.Nested(MoneySchema)
    reference = fields.String()
    ends_access = fields.Boolean(metadata={"description": "the participant lost the ticket with it (R19)"})


class PaymentAuthorizationSchema(Schema):
    """Money a provider holds until the shop confirms it (PayU WAITING_FOR_CONFIRMATION)."""

    amount = fields.Nested(MoneySchema)
    provider = fields.String()
    reference = fields.String()


class DisputeSchema(Schema):
    """A dispute (chargeback) or a reversal the payment provider reported."""

    id = fields.String(metadata={"description": "the provider's dispute id (or reversal:<id>)"})
    status = fields.String(metadata={"enum": ["open", "won", "lost"]})
    reason = fields.String(allow_none=True, metadata={"description": "the provider's reason, when it gives one"})
    amount = fields.Nested(MoneySchema, metadata={"description": "the amount disputed"})
    withdrawn = fields.Nested(MoneySchema, metadata={"description": "taken from the organizer's balance"})
    reinstated = fields.Nested(MoneySchema, metadata={"description": "given back to the organizer's balance"})


class PaymentFailureSchema(Schema):
    reason = fields.String()
    reference = fields.String()


class EmailFailureSchema(Schema):
    message_id = fields.String()
    kind = fields.String(metadata={"description": "which e-mail could not be delivered"})
    smtp_code = fields.Integer(allow_none=True)
    reason = fields.String(allow_none=True, metadata={"description": "the mail server's reply; null once erased"})
    at = _time("when the failure was reported")


class PaymentMismatchSchema(Schema):
    """A payment that did not match the registration (e.g. another currency)."""

    amount = fields.Nested(MoneySchema)
    provider = fields.String()
    reference = fields.String()
    recorded = fields.Boolean(metadata={
        "description": "the organizer has recorded a payment with this provider and reference"})


class RegistrationSchema(Schema):
    id = _text("registration id")
    version = fields.Integer(metadata={"description": "aggregate version, also the ETag"})
    event_id = fields.String()
    organizer_id = fields.String()
    name = fields.String(allow_none=True, metadata={"description": "null once erased (R24)"})
    email = fields.String(allow_none=True, metadata={"description": "null once erased (R24)"})
    fields_ = fields.Dict(attribute="fields", data_key="fields", keys=fields.String(), values=fields.String(),
                          allow_none=True,
                          metadata={"description": "the extra form fields the participant filled in; null once erased"})
    erased = fields.Boolean(metadata={"description": "the participant's personal data was erased (R24)"})
    language = fields.String(allow_none=True, metadata={"enum": ["en", "pl"]})
    status = fields.String(metadata={"enum": list(STATUSES)})
    price = fields.Nested(MoneySchema)
    paid = fields.Nested(MoneySchema)
    refunded = fields.Nested(MoneySchema)
    refund_due = fields.Nested(MoneySchema, metadata={"description": "owed back to the participant (R15, R17)"})
    ticket_money = fields.Nested(MoneySchema, metadata={
        "description": "the money paying for the ticket held (R17); 0 without a ticket"})
    fee = fields.Nested(MoneySchema, metadata={"description": "service fee charged minus reversed (R16, R18)"})
    provider = fields.String(metadata={"enum": list(PROVIDERS)})
    checkout = fields.Nested(RegistrationCheckoutSchema, allow_none=True)
    payments = fields.List(fields.Nested(RecordedPaymentSchema))
    refunds = fields.List(fields.Nested(RecordedRefundSchema))
    payment_failures = fields.List(fields.Nested(PaymentFailureSchema))
    email_failures = fields.List(fields.Nested(EmailFailureSchema))
    payment_mismatches = fields.List(fields.Nested(PaymentMismatchSchema))
    payment_authorizations = fields.List(fields.Nested(PaymentAuthorizationSchema), metadata={
        "description": "money the provider holds until the shop confirms it (PayU); the ledger confirms or "
                       "releases it"})
    failed_refunds = fields.List(fields.String(), metadata={
        "description": "references of refunds the provider reports as failed: their money was not returned, it "
                       "is owed back again (they no longer count in `refunded`)"})
    disputed = fields.Boolean(metadata={"description": "a dispute is open or was lost"})
    withdrawn = fields.Nested(MoneySchema, metadata={
        "description": "money the provider took back (disputes, reversals), net of what it reinstated"})
    disputes = fields.List(fields.Nested(DisputeSchema))
    closed_reason = fields.String(allow_none=True, metadata={"description": "why it was rejected or cancelled"})
    close_note = fields.String(allow_none=True)
    created_at = _time("when the participant registered")
    updated_at = _time("the last change")


class ErasureCreateSchema(Schema):
    """Whose personal data to erase: one registration, or every registration
    (of the caller's events; an admin's: of all) made with one e-mail address."""

    registration_id = fields.String(validate=validate.Length(min=1, max=64),
                                    metadata={"description": "one registration"})
    email = fields.String(validate=validate.Length(min=1, max=254),
                          metadata={"description": "every registration made with this e-mail address"})

    @validates_schema
    def _one_of(self, data: dict[str, Any], **_: Any) -> None:
        if ("registration_id" in data) == ("email" in data):
            raise ValidationError("give exactly one of registration_id and email")


class ErasedRegistrationSchema(Schema):
    registration_id = _text("the erased registration")
    event_id = _text("the id of its PersonalDataErased event in the log")
    position = fields.Integer(allow_none=True, metadata={"description": "that event's log position"})
    already_erased = fields.Boolean(metadata={"description": "erased by an earlier request: nothing new recorded"})


class ErasureReceiptSchema(Schema):
    """The receipt of an erasure (R24)."""

    id = _text("erasure id")
    erased_at = _time("when the request was carried out")
    registrations = fields.List(fields.Nested(ErasedRegistrationSchema))
    erased = fields.List(fields.String(), metadata={"description": "what was erased, per registration"})
    purged = fields.Dict(keys=fields.String(), values=fields.Integer(), metadata={
        "description": "rows purged outside the event log, per place"})
