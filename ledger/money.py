"""Exact money (R8): integer minor units plus an ISO 4217 currency code.

Amounts never pass through binary floats.  On the wire an amount is a decimal
string in major units (``"49.00"``); inside the ledger it is an ``int`` of minor
units, so sums are exact and rounding only happens where a rule says so
(see :mod:`ledger.fee_policy`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from ledger.errors import AmountInvalid, CurrencyMismatch, CurrencyNotSupported

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
