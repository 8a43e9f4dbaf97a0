"""Exact money (R8): integer minor units plus an ISO 4217 currency code.

Amounts never pass through binary floats.  On the wire an amount is a decimal
string in major units (``"49.00"``); inside the ledger it is an ``int`` of minor
units, so sums are exact and rounding only happens where a rule says so
(see :mod:`ledger.fee_policy`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from ledger.errors import AmountAboveLimit, AmountInvalid, CurrencyMismatch, CurrencyNotSupported
from ledger.providers.description import MAX_PRICE_MAJOR

#: Minor-unit exponent for every currency the ledger accepts (ISO 4217).  All of
#: R6's currencies use two decimals; the table exists so that adding a
#: zero-decimal currency later is a one-line change.
MINOR_UNIT_DIGITS: dict[str, int] = {
    code: 2
    for code in (
        "USD EUR GBP PLN RUB AUD NZD CAD CZK DKK HKD ILS MXN NOK PHP SGD SEK CHF "
        "THB HUF BGN RON"
    ).split()
}


def minor_digits(currency: str) -> int:
    try:
        return MINOR_UNIT_DIGITS[currency]
    except KeyError:
        raise CurrencyNotSupported(currency) from None


#: R21: no amount received, refunded or reported by a provider may exceed this
#: many times the currency's maximum ticket price (R6).  Why a bound at all: one
#: absurd amount (``100000000000000000.00``) once overflowed the views' bigint
#: columns and stopped every view.  Why 10 and not 1: a registration holds one
#: ticket, so a real payment is at most the price -- but money that arrives
#: twice, or a payment the organizer records by hand for more than was due, is
#: still a fact to record and owe back (R17); ten tickets' worth covers every
#: honest case.  With HUF, the largest, 10 x 700000.00 is 7 * 10**8 minor units,
#: so even a sum of millions of such amounts stays far below 2**53.
AMOUNT_LIMIT_FACTOR = 10

#: R21: the largest integer that every consumer of the stream (JavaScript's
#: Number, a double, Java's long, Go's int64) reads exactly.
MAX_SAFE_MINOR = 2**53 - 1


def amount_limit_minor(currency: str) -> int:
    """R21: the largest amount (minor units) of ``currency`` the ledger accepts."""
    try:
        major = MAX_PRICE_MAJOR[currency]
    except KeyError:
        raise CurrencyNotSupported(currency) from None
    return major * AMOUNT_LIMIT_FACTOR * 10 ** minor_digits(currency)


#: R21, for the event JSON Schemas (docs/schemas): the largest amount of any currency.
MAX_AMOUNT_MINOR = max(amount_limit_minor(c) for c in MAX_PRICE_MAJOR)
assert MAX_AMOUNT_MINOR <= MAX_SAFE_MINOR, "R21: every amount must fit 53 bits"
#: Integer digits of the largest bound: a longer amount is above it, whatever its digits.
_MAX_DIGITS = len(str(MAX_AMOUNT_MINOR))


@dataclass(frozen=True, order=True)
class Money:
    """An amount of one currency.  Arithmetic across currencies is refused."""

    minor: int
    currency: str

    @classmethod
    def parse(cls, amount: str, currency: str, *, field: str = "amount") -> Money:
        """Parse a decimal string in major units, refusing anything inexact.

        ``"49"``, ``"49.5"`` and ``"49.50"`` are accepted for a two-digit
        currency; ``"49.505"``, ``"1e3"``, ``"NaN"`` and ``" 49"`` are not.
        """
        digits = minor_digits(currency)
        if not isinstance(amount, str) or not amount or amount.strip() != amount:
            raise AmountInvalid(field, "must be a decimal string such as '49.00'")
        if any(ch not in "0123456789.-" for ch in amount):
            raise AmountInvalid(field, "must be a decimal string such as '49.00'")
        try:
            value = Decimal(amount)
        except InvalidOperation:
            raise AmountInvalid(field, "must be a decimal string such as '49.00'") from None
        if not value.is_finite():
            raise AmountInvalid(field, "must be a finite decimal")
        exponent = value.as_tuple().exponent
        assert isinstance(exponent, int)
        if -exponent > digits:
            raise AmountInvalid(
                field, f"{currency} allows at most {digits} decimal places"
            )
        return cls(int(value.scaleb(digits)), currency)

    @classmethod
    def received(cls, amount: str, currency: str, *, field: str = "amount") -> Money:
        """An amount arriving from outside (API, pages): exact as :meth:`parse`
        and within R21's bound (``amount_above_limit``).  The digits are
        checked before parsing, so no giant number is ever built.  The
        currency is read in any case (``usd`` is USD): ISO codes carry no case."""
        if isinstance(currency, str):
            currency = currency.upper()
        if isinstance(amount, str) and len(amount.lstrip("-").split(".")[0].lstrip("0")) > _MAX_DIGITS:
            raise AmountAboveLimit(field, cls(amount_limit_minor(currency), currency))
        return check_bounded(cls.parse(amount, currency, field=field), field)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    @classmethod
    def of(cls, major: int, currency: str) -> Money:
        return cls(major * 10 ** minor_digits(currency), currency)

    @property
    def amount(self) -> str:
        """The decimal string in major units, always with every minor digit."""
        digits = minor_digits(self.currency)
        sign = "-" if self.minor < 0 else ""
        whole, frac = divmod(abs(self.minor), 10**digits)
        return f"{sign}{whole}.{frac:0{digits}d}" if digits else f"{sign}{whole}"

    def as_dict(self) -> dict[str, str]:
        return {"amount": self.amount, "currency": self.currency}

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(self.currency, other.currency)

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor - other.minor, self.currency)

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"


def check_bounded(amount: Money, field: str = "amount") -> Money:
    """R21: refuse an amount above :func:`amount_limit_minor` (either sign).

    Called by the domain wherever an amount is about to become an event
    (payments, refunds, mismatches), so every route -- API, pages, webhooks,
    the reconciler -- is held to it, whatever built the ``Money``."""
    limit = amount_limit_minor(amount.currency)
    if abs(amount.minor) > limit:
        raise AmountAboveLimit(field, Money(limit, amount.currency))
    return amount
