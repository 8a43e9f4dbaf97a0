"""Domain errors, one class per business reason, each with its stable ``code``.

The codes are a public contract (API.md): clients branch on them.  The HTTP
status is carried here too so that the API has one generic handler and the core
still imports nothing from Flask.
"""

from __future__ import annotations

from ledger.providers.description import MAX_PRICE_MAJOR


class LedgerError(Exception):
    """Base for every refusal the ledger can explain to a caller."""

    code = "ledger_error"
    status = 422
    title = "Request refused"

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field

    def errors(self) -> dict[str, list[str]] | None:
        return {self.field: [self.detail]} if self.field else None


class ValidationFailed(LedgerError):
    code = "validation_failed"
    title = "The request body is invalid"

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self._errors = errors

    def errors(self) -> dict[str, list[str]] | None:
        return self._errors


class AmountInvalid(LedgerError):
    code = "amount_invalid"
    title = "The amount is not a valid decimal string"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field=field)


class CurrencyNotSupported(LedgerError):
    code = "currency_not_supported"
    title = "Currency not supported"

    def __init__(self, currency: str) -> None:
        accepted = ", ".join(sorted(MAX_PRICE_MAJOR))
        super().__init__(
            f"{currency!r} is not an accepted currency; the accepted ISO 4217 codes are {accepted}",
            field="currency",
        )


class CurrencyNotSupportedByProvider(LedgerError):
    code = "currency_not_supported_by_provider"
    title = "Currency not supported by this provider"

    def __init__(self, currency: str, provider: str) -> None:
        super().__init__(f"{provider} does not accept {currency}", field="currency")


class CurrencyMismatch(LedgerError):
    code = "currency_mismatch"
    title = "Currency does not match"

    def __init__(self, expected: str, got: str) -> None:
        super().__init__(f"expected {expected}, got {got}", field="currency")


class PriceBelowMinimum(LedgerError):
    code = "price_below_minimum"
    title = "Price below the minimum"


class PriceBelowProviderMinimum(LedgerError):
    """The provider refuses charges this small in this currency (e.g. Stripe
    PLN 2.00): refused when the event is created, not at the first checkout."""

    code = "price_below_provider_minimum"
    title = "Price below the provider's minimum charge"


class PriceAboveLimit(LedgerError):
    code = "price_above_limit"
    title = "Price above the currency's limit"


class PriceImmutable(LedgerError):
    code = "price_immutable"
    title = "The price of an event can never change"


class ProviderNotAvailableInCountry(LedgerError):
    code = "provider_not_available_in_country"
    title = "Provider not available in the organizer's country"


class ProviderNotConnected(LedgerError):
    code = "provider_not_connected"
    title = "Provider not connected"


class CapacityExhausted(LedgerError):
    code = "capacity_exhausted"
    title = "No tickets left"


class StartsAtInPast(LedgerError):
    """A session would start at or before the ledger's clock: creating an event
    or rescheduling into the past would mail every participant a date that has
    gone (R13)."""

    code = "starts_at_in_past"
    title = "The start time is in the past"


class EventCancelled(LedgerError):
    code = "event_cancelled"
    status = 409
    title = "The event is cancelled"


class InvalidState(LedgerError):
    code = "invalid_state"
    status = 409
    title = "Not allowed in the current state"


class AmountMismatch(LedgerError):
    code = "amount_mismatch"
    title = "Amount does not match what is due"


class RefundExceedsPaid(LedgerError):
    code = "refund_exceeds_paid"
    title = "Refund larger than what was paid"


class VersionConflict(LedgerError):
    code = "version_conflict"
    status = 409
    title = "Concurrent modification"


class PreconditionFailed(LedgerError):
    code = "version_conflict"
    status = 412
    title = "If-Match does not match the current version"


class NotFound(LedgerError):
    code = "not_found"
    status = 404
    title = "Not found"


class Forbidden(LedgerError):
    code = "forbidden"
    status = 403
    title = "Forbidden"


class Unauthenticated(LedgerError):
    code = "unauthenticated"
    status = 401
    title = "Authentication required"


class ProviderCredentialsInvalid(LedgerError):
    code = "provider_credentials_invalid"
    title = "The provider refused these credentials"


class ProviderUnavailable(LedgerError):
    code = "provider_unavailable"
    status = 503
    title = "The payment provider is unavailable"


class InvalidSignature(LedgerError):
    code = "invalid_signature"
    status = 400
    title = "The notification signature is invalid"


class IdempotencyKeyReused(LedgerError):
    code = "idempotency_key_reused"
    title = "Idempotency-Key reused with a different request"


class RequestInProgress(LedgerError):
    code = "request_in_progress"
    status = 409
    title = "A request with this Idempotency-Key is still being processed"


class RateLimited(LedgerError):
    """A client went over a public operation's limit (API.md: 429 with
    ``Retry-After``).  ``retry_after`` is in whole seconds, at least 1."""

    code = "rate_limited"
    status = 429
    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = max(1, retry_after)


class AmountAboveLimit(LedgerError):
    """R21: an amount above what the ledger accepts for its currency (the R6
    ticket maximum times ``ledger.money.AMOUNT_LIMIT_FACTOR``)."""

    code = "amount_above_limit"
    title = "Amount above the currency's limit"

    def __init__(self, field: str, limit: object) -> None:
        super().__init__(f"at most {limit} is accepted", field=field)


class MalformedJson(LedgerError):
    """A body that is not JSON the ledger can read: not UTF-8, nested deeper
    than the limit, or a number longer than Python converts (4300 digits)."""

    code = "malformed_json"
    status = 400
    title = "The request body is not valid JSON"


class NotificationMalformed(LedgerError):
    """A verified provider notification whose shape the ledger cannot read
    (an amount that is not an integer, ``metadata`` that is not an object …).
    A 4xx, never a 500: the provider would retry a 5xx forever."""

    code = "malformed_notification"
    status = 400
    title = "The notification body is not what the provider documents"


class PaymentReferenceConflict(LedgerError):
    """A payment with this provider reference is already recorded with another
    amount: the same reference again is a repeat (recorded once), another
    amount under it is refused -- never answered as if it had been recorded."""

    code = "payment_reference_conflict"
    status = 409
    title = "This payment reference is already recorded with another amount"


class RefundReferenceConflict(LedgerError):
    """A refund with this reference is already recorded with another amount
    (see :class:`PaymentReferenceConflict`)."""

    code = "refund_reference_conflict"
    status = 409
    title = "This refund reference is already recorded with another amount"
