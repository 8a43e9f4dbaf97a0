"""Ticket price rules: R3 (PayU: PLN only, Poland only), R5, R6 and R2/R1 scope.

One function decides whether a price may be declared for an event paid through a
given provider by an organizer of a given country.  It raises the specific
domain error so that the caller (API, CLI, web page) can show the exact reason.
"""

from __future__ import annotations

from ledger.errors import (
    CurrencyNotSupported,
    CurrencyNotSupportedByProvider,
    PriceAboveLimit,
    PriceBelowMinimum,
    ProviderNotAvailableInCountry,
)
from ledger.money import Money

#: R6: the maximum ticket price per currency, in major units.
MAX_PRICE_MAJOR: dict[str, int] = {
    "USD": 2000, "EUR": 2000, "GBP": 2000, "PLN": 8000, "RUB": 200000,
    "AUD": 3000, "NZD": 3000, "CAD": 3000, "CZK": 46000, "DKK": 13000,
    "HKD": 20000, "ILS": 74000, "MXN": 40000, "NOK": 17000, "PHP": 106000,
    "SGD": 2800, "SEK": 18000, "CHF": 2000, "THB": 66000,
    "HUF": 700000, "BGN": 4000, "RON": 8000,
}  # fmt: skip

#: R6: currencies that only Stripe accepts.
STRIPE_ONLY = frozenset({"HUF", "BGN", "RON"})

#: The providers an organizer can connect (R1–R3) plus offline payments.
PROVIDERS = ("stripe", "payu", "paypal", "manual")

#: R3: PayU serves Polish organizers only.
PAYU_COUNTRIES = frozenset({"PL"})

#: R6: the minimum price is one unit of the currency.
MIN_PRICE_MAJOR = 1


def check_provider_country(provider: str, country: str) -> None:
    """R3: PayU is for Polish organizers only."""
    if provider == "payu" and country not in PAYU_COUNTRIES:
        raise ProviderNotAvailableInCountry(
            f"PayU is available to organizers in Poland only, not {country} (R3)",
            field="provider",
        )


def check_price(price: Money, provider: str) -> None:
    """R5/R6/R3: one price in an accepted currency, within [1, max], on a provider
    that accepts the currency."""
    if price.currency not in MAX_PRICE_MAJOR:
        raise CurrencyNotSupported(price.currency)
    if price.currency in STRIPE_ONLY and provider != "stripe":
        raise CurrencyNotSupportedByProvider(price.currency, provider)
    if provider == "payu" and price.currency != "PLN":
        raise CurrencyNotSupportedByProvider(price.currency, provider)
    if price < Money.of(MIN_PRICE_MAJOR, price.currency):
        raise PriceBelowMinimum(
            f"the minimum price is {Money.of(MIN_PRICE_MAJOR, price.currency)} (R6)",
            field="price",
        )
    limit = Money.of(MAX_PRICE_MAJOR[price.currency], price.currency)
    if price > limit:
        raise PriceAboveLimit(f"the maximum price is {limit} (R6)", field="price")
