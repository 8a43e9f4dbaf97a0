"""Ticket price rules: R3 (PayU: PLN only, Poland only), R5, R6 and R2/R1 scope.

One function decides whether a price may be declared for an event paid through a
given provider by an organizer of a given country.  It raises the specific
domain error so that the caller (API, CLI, web page) can show the exact reason.
Which provider serves which countries and currencies is declared on the
provider's class (:mod:`ledger.providers.registry`).
"""

from __future__ import annotations

from ledger.errors import (
    CurrencyNotSupported,
    CurrencyNotSupportedByProvider,
    PriceAboveLimit,
    PriceBelowMinimum,
    PriceBelowProviderMinimum,
    ProviderNotAvailableInCountry,
)
from ledger.money import Money
from ledger.providers.description import MAX_PRICE_MAJOR, STRIPE_ONLY
from ledger.providers.registry import PROVIDERS, describe

#: R6: the minimum price is one unit of the currency.
MIN_PRICE_MAJOR = 1

__all__ = [
    "MAX_PRICE_MAJOR", "MIN_PRICE_MAJOR", "PROVIDERS", "STRIPE_ONLY", "check_price", "check_provider_country",
    "minimum_price",
]


def check_provider_country(provider: str, country: str) -> None:
    """R3: PayU is for Polish organizers only."""
    description = describe(provider)
    if description.countries is not None and country not in description.countries:
        raise ProviderNotAvailableInCountry(
            f"{description.label} is available to organizers in {description.countries_label} only, "
            f"not {country}",
            field="provider",
        )


def minimum_price(currency: str, provider: str) -> Money:
    """The smallest price an event paid through ``provider`` may have: R6's one
    unit, or the provider's own minimum charge when that is higher (what the
    pages show next to the price field)."""
    floor = Money.of(MIN_PRICE_MAJOR, currency)
    provider_minimum = describe(provider).minimum_charge.get(currency)
    return max(floor, Money.parse(provider_minimum, currency)) if provider_minimum else floor


def check_price(price: Money, provider: str) -> None:
    """R5/R6/R3: one price in an accepted currency, within [1, max], on a provider
    that accepts the currency."""
    if price.currency not in MAX_PRICE_MAJOR:
        raise CurrencyNotSupported(price.currency)
    if price.currency not in describe(provider).currencies:
        raise CurrencyNotSupportedByProvider(price.currency, provider)
    if price < Money.of(MIN_PRICE_MAJOR, price.currency):
        raise PriceBelowMinimum(
            f"the minimum price is {Money.of(MIN_PRICE_MAJOR, price.currency)}",
            field="price",
        )
    floor = minimum_price(price.currency, provider)
    if price < floor:
        raise PriceBelowProviderMinimum(f"{describe(provider).label} accepts no charge below {floor}", field="price")
    limit = Money.of(MAX_PRICE_MAJOR[price.currency], price.currency)
    if price > limit:
        raise PriceAboveLimit(f"the maximum price is {limit}", field="price")
