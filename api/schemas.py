"""Marshmallow schemas: the request and response shapes of API.md.

Amounts are taken as *raw* values here and parsed by ``ledger.money.Money``,
so a JSON number gets the precise ``amount_invalid`` refusal rather than a
generic type error, and the rule lives in one place.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from marshmallow import Schema, ValidationError, fields, validate, validates

from ledger.money import Money
from ledger.pricing import PROVIDERS

STRICT = {"unknown": "raise"}


class AwareDateTime(fields.DateTime):
    """RFC 3339 with an explicit offset; naive times are refused."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        result = super()._deserialize(value, attr, data, **kwargs)
        if result.tzinfo is None or result.utcoffset() is None:
            raise ValidationError("must include a UTC offset, e.g. 2026-12-01T18:00:00+01:00")
        return result


class MoneySchema(Schema):
    amount = fields.Raw(
        required=True,
        metadata={"type": "string", "example": "49.00", "description": "decimal string, major units"},
    )
    currency = fields.String(required=True, validate=validate.Length(equal=3), metadata={"example": "USD"})


def money_from(data: dict[str, Any], field: str = "amount") -> Money:
    return Money.parse(data["amount"], data["currency"], field=field)


class ProblemSchema(Schema):
    type = fields.String()
    title = fields.String()
    status = fields.Integer()
    detail = fields.String()
    code = fields.String()
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))


# --- organizers ------------------------------------------------------------------

class OrganizerCreateSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    country = fields.String(required=True, validate=validate.Regexp(r"^[A-Z]{2}$"))
    plan_size = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=1_000_000))


class PlanChangeSchema(Schema):
    plan_size = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=1_000_000))


class OrganizerSchema(Schema):
    id = fields.String()
    version = fields.Integer()
    name = fields.String()
    country = fields.String()
    plan_size = fields.Integer()


class ProviderConnectSchema(Schema):
    """Credential fields depend on the provider (API.md); checked in the view."""

    class Meta:
        unknown = "include"

    provider = fields.String(required=True, validate=validate.OneOf(PROVIDERS))


class ConnectionSchema(Schema):
    id = fields.String()
    provider = fields.String()
    masked = fields.Dict(keys=fields.String(), values=fields.String())


class TokenCreateSchema(Schema):
    role = fields.String(required=True, validate=validate.OneOf(("admin", "finance", "organizer")))
    organizer_id = fields.String(load_default=None)
    label = fields.String(load_default="", validate=validate.Length(max=200))


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


class EventSchema(Schema):
    id = fields.String()
    version = fields.Integer()
    organizer_id = fields.String()
    title = fields.String()
    description = fields.String()
    status = fields.String()
    permanent = fields.Boolean()
    timezone = fields.String()
    starts_at = fields.String()
    sessions = fields.List(fields.Dict())
    price = fields.Nested(MoneySchema)
    provider = fields.String()
    capacity = fields.Integer()
    tickets_sold = fields.Integer()
    tickets_left = fields.Integer()
    cancel_reason = fields.String(allow_none=True)


# --- registrations -----------------------------------------------------------------

class RegistrationCreateSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    email = fields.Email(required=True, validate=validate.Length(max=254))
    fields_ = fields.Dict(
        data_key="fields", keys=fields.String(validate=validate.Length(max=100)),
        values=fields.String(validate=validate.Length(max=2000)), load_default=dict,
        validate=validate.Length(max=30),
    )
    language = fields.String(load_default=None, validate=validate.OneOf(("en", "pl")))


class PaymentSchema(Schema):
    amount = fields.Nested(MoneySchema, required=True)
    provider = fields.String(load_default="manual", validate=validate.Length(min=1, max=40))
    reference = fields.String(required=True, validate=validate.Length(min=1, max=200))


class RefundSchema(Schema):
    amount = fields.Nested(MoneySchema, required=True)
    reference = fields.String(required=True, validate=validate.Length(min=1, max=200))


class RegistrationSchema(Schema):
    class Meta:
        unknown = "include"

    id = fields.String()
    version = fields.Integer()
    event_id = fields.String()
    status = fields.String()
    paid = fields.Nested(MoneySchema)
    refunded = fields.Nested(MoneySchema)
    refund_due = fields.Nested(MoneySchema)
    checkout = fields.Dict(allow_none=True)
